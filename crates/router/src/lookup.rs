//! Kazoo mode: events of accounts the index does not know yet.
//!
//! Kazoo creates accounts on its own, and the API's account sync copies each on Kazoo's notice,
//! which may come after the account's first events, or be lost (Kazoo's exchange keeps nothing).
//! Such an event would miss its ancestors' `include_subaccounts` hooks. Instead it waits
//! [`ACCOUNT_WAIT_MS`](webhooks_bus::ACCOUNT_WAIT_MS) on the bus
//! (`Topology::account_wait_exchange`), while the account sync is asked to read the account from
//! Crossbar and announce it (`Topology::account_lookup_routing_key`). When the event comes back
//! the index knows the account, or the event is skipped, as Kazoo skips events of accounts it
//! does not have. An account is asked for once at a time; one that stayed unknown is not asked
//! for again for a while, and its events meanwhile are skipped at once.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use webhooks_bus::{Delivery, Outgoing, Topology};
use webhooks_model::ids::AccountId;

/// The header marking an event back from its wait: it is not held again.
pub(crate) const WAITED_HEADER: &str = "x-webhooks-account-wait";

/// How long after an account was asked for its events still wait: the answer may be on its way.
const ANSWER_WINDOW: Duration = Duration::from_secs(2);
/// How long an account that stayed unknown is not asked for again.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(60);
/// Accounts remembered before the ones asked for longest ago are forgotten.
const REMEMBERED: usize = 10_000;

/// What to do with an event of an account the index does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Let it wait; `ask`: ask the account sync for the account too.
    Wait {
        /// The account was not asked for lately.
        ask: bool,
    },
    /// Skip it: it waited already, or its account was asked for and stayed unknown.
    Skip,
}

/// The accounts asked for lately, and when.
#[derive(Debug, Default)]
pub(crate) struct AccountLookups {
    asked: HashMap<AccountId, Instant>,
}

impl AccountLookups {
    /// What to do, at `now`, with `delivery`, an event of `account`, which the index does not know.
    pub(crate) fn verdict(&mut self, account: &AccountId, delivery: &Delivery, now: Instant) -> Verdict {
        if delivery.header(WAITED_HEADER).is_some() {
            return Verdict::Skip;
        }
        match self.asked.get(account).map(|asked| now.saturating_duration_since(*asked)) {
            Some(since) if since < ANSWER_WINDOW => Verdict::Wait { ask: false },
            Some(since) if since < ASK_AGAIN_AFTER => Verdict::Skip,
            _ => {
                if self.asked.len() >= REMEMBERED {
                    self.asked.retain(|_, asked| now.saturating_duration_since(*asked) < ASK_AGAIN_AFTER);
                }
                self.asked.insert(account.clone(), now);
                Verdict::Wait { ask: true }
            }
        }
    }
}

/// `delivery`, marked, for the wait queue.
pub(crate) fn wait_message(topology: &Topology, delivery: &Delivery) -> Outgoing {
    let mut copy = Outgoing::copy_of(delivery, &topology.account_wait_exchange());
    copy.headers.push((WAITED_HEADER.to_owned(), "1".to_owned()));
    copy
}

/// The request to the account sync to read `account` from Crossbar and announce it.
pub(crate) fn lookup_message(topology: &Topology, account: &AccountId) -> Outgoing {
    let body = serde_json::json!({ "Account-ID": account });
    Outgoing::persistent(&topology.accounts_exchange(), &topology.account_lookup_routing_key(account), body.to_string())
}

#[cfg(test)]
mod tests {
    use webhooks_bus::Bus;

    use super::*;

    /// A delivery of an event, marked as back from its wait or not.
    async fn event(waited: bool) -> Delivery {
        let bus = Bus::connect(None, Topology::new("lookup")).await.expect("the in-process bus");
        let queue = bus.private_queue(&[("callevt", "#".to_owned())]).await.expect("a queue");
        let mut message = Outgoing::new("callevt", "call.CHANNEL_CREATE.x", "{}");
        if waited {
            message.headers.push((WAITED_HEADER.to_owned(), "1".to_owned()));
        }
        bus.publish(message).await.expect("published");
        bus.consume(&queue, 1).await.expect("consumed").next().await.expect("a delivery")
    }

    #[tokio::test]
    async fn an_account_is_asked_for_once_and_events_wait_only_while_its_answer_may_come() {
        let (fresh, back) = (event(false).await, event(true).await);
        let mut lookups = AccountLookups::default();
        let account = AccountId::generate();
        let start = Instant::now();
        assert_eq!(lookups.verdict(&account, &fresh, start), Verdict::Wait { ask: true });
        assert_eq!(lookups.verdict(&account, &fresh, start + Duration::from_secs(1)), Verdict::Wait { ask: false });
        assert_eq!(lookups.verdict(&account, &back, start + Duration::from_secs(1)), Verdict::Skip, "waited once");
        assert_eq!(lookups.verdict(&account, &fresh, start + ANSWER_WINDOW), Verdict::Skip, "stayed unknown");
        assert_eq!(lookups.verdict(&account, &fresh, start + ASK_AGAIN_AFTER), Verdict::Wait { ask: true });
        assert_eq!(lookups.verdict(&AccountId::generate(), &fresh, start), Verdict::Wait { ask: true });
    }

    #[tokio::test]
    async fn the_accounts_remembered_are_bounded() {
        let fresh = event(false).await;
        let mut lookups = AccountLookups::default();
        let start = Instant::now();
        for _ in 0..REMEMBERED {
            lookups.verdict(&AccountId::generate(), &fresh, start);
        }
        lookups.verdict(&AccountId::generate(), &fresh, start + ASK_AGAIN_AFTER);
        assert_eq!(lookups.asked.len(), 1, "the ones asked for long ago are forgotten");
    }
}
