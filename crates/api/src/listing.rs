//! The hooks of recently listed accounts, kept in memory so a listing costs no database round
//! trip. Every change is announced on the bus (by this replica, another one, the dispatcher's
//! auto-disabler or an operator command); each replica forgets what a notice concerns, and
//! entries also expire, as a safety net for a notice lost with the bus.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use webhooks_bus::{Bus, BusError};
use webhooks_model::ids::AccountId;
use webhooks_model::notice::Change;
use webhooks_storage::{PageRequest, StorageError, Store, Webhook};

/// One listed hook: the stored hook (for `filter_*`) and its listing summary, built once.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub(crate) hook: Webhook,
    pub(crate) summary: Value,
}

/// Accounts' hooks, each list sorted by id.
#[derive(Debug)]
pub(crate) struct HookLists {
    lists: moka::sync::Cache<AccountId, Arc<Vec<Listed>>>,
    /// Bumped by every change; a list read from the store is kept only if no change came
    /// meanwhile, so a read racing a write cannot put the old state back.
    generation: AtomicU64,
    /// Whether change notices are being followed; without them nothing is kept.
    following: AtomicBool,
}

impl HookLists {
    pub(crate) fn new(time_to_live: Duration) -> Self {
        Self {
            lists: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .weigher(|_, list: &Arc<Vec<Listed>>| u32::try_from(list.len()).unwrap_or(u32::MAX).max(1))
                .time_to_live(time_to_live)
                .build(),
            generation: AtomicU64::new(0),
            following: AtomicBool::new(false),
        }
    }

    /// Every hook of `account`, sorted by id, from memory or else from the store.
    pub(crate) async fn of(
        &self,
        store: &Store,
        account: &AccountId,
        summary: impl Fn(&Webhook) -> Value,
    ) -> Result<Arc<Vec<Listed>>, StorageError> {
        if let Some(list) = self.lists.get(account) {
            return Ok(list);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let everything = PageRequest { start_key: None, page_size: None, ascending: true };
        let hooks = store.list_webhooks(account, &everything).await?.items;
        let list = Arc::new(hooks.into_iter().map(|hook| Listed { summary: summary(&hook), hook }).collect::<Vec<_>>());
        if self.following.load(Ordering::Acquire) && self.generation.load(Ordering::Acquire) == generation {
            self.lists.insert(account.clone(), Arc::clone(&list));
        }
        Ok(list)
    }

    /// Forgets what `change` may have made stale.
    pub(crate) fn forget(&self, change: &Change) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        match change {
            Change::Webhook { account_id, .. } | Change::Reenabled { account_id, descendants: false } => {
                self.lists.invalidate(account_id);
            }
            Change::Account { id, .. } => self.lists.invalidate(id),
            // Descendants are not known here; re-enabling a whole tree is rare.
            Change::Reenabled { descendants: true, .. } => self.lists.invalidate_all(),
        }
    }

    /// Subscribes to the change notices of `bus`; lists are kept from then on, and forgotten as
    /// notices arrive while the returned future runs (until `shutdown`). When the bus reconnects
    /// everything is forgotten, since notices may have been missed meanwhile; when it closes for
    /// good, nothing is kept any more.
    pub(crate) async fn follow(
        self: Arc<Self>,
        bus: Bus,
        shutdown: CancellationToken,
    ) -> Result<impl Future<Output = ()>, BusError> {
        let queue = bus.private_queue(&bus.topology().change_notice_bindings()).await?;
        let mut notices = bus.consume(&queue, 100).await?;
        self.following.store(true, Ordering::Release);
        Ok(async move {
            let mut reconnections = bus.reconnections();
            loop {
                let delivery = tokio::select! {
                    () = shutdown.cancelled() => break,
                    delivery = notices.next() => delivery,
                };
                let Some(delivery) = delivery else { break };
                if bus.reconnections() != reconnections {
                    reconnections = bus.reconnections();
                    self.forget_all();
                }
                match serde_json::from_slice::<Value>(&delivery.body).map(|body| Change::parse(&body)) {
                    Ok(Ok(change)) => self.forget(&change),
                    // Kazoo's own changes of other documents share the bindings' patterns.
                    _ => tracing::trace!(routing_key = %delivery.routing_key, "not a hook or account change"),
                }
                if let Err(error) = delivery.ack().await {
                    tracing::debug!(error = %error, "change notice not acknowledged");
                }
            }
            self.following.store(false, Ordering::Release);
            self.forget_all();
        })
    }

    fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.lists.invalidate_all();
    }
}
