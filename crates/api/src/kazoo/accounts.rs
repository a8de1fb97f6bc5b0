//! Kazoo's accounts, copied into the store: in Kazoo mode the service owns no account, and keeps
//! what hooks need of Kazoo's (name, tree, reseller, enabled and super-admin flags) from Crossbar.
//!
//! An account is read with `GET /v2/accounts/{A}` (its flags) and `GET /v2/accounts/{A}/tree`
//! (its ancestors, root first); the whole tree with `GET /v2/accounts/{MASTER}/descendants`, page
//! by page (each row carries its `tree`). Accounts are copied:
//! - in full at start, every `accounts_reconcile_seconds`, and after each reconnection to the
//!   broker ([`AccountSync::reconcile`]): Kazoo's exchange and queues are not durable, and its bulk
//!   jobs send no notices, so a notice can be lost;
//! - one by one on Kazoo's own notices (`doc_*.accounts.account.{A}` on `configuration`, whose
//!   bodies carry no document, so the account is read again), taken from a queue the API
//!   replicas share ([`AccountSync::follow`]);
//! - on demand, when a request with a verified token names an account not copied yet
//!   ([`AccountSync::refresh`]), so a hook can be created on an account seconds after Kazoo
//!   created it, and when a router asks, on the same queue, for an account an event names and
//!   its index lacks (`Topology::account_lookup_routing_key`): read, and announced even when
//!   unchanged.
//!
//! Parents are written before children. Each account is read and written under its copy lock
//! (`Store::lock_account_copy`, shared by the replicas on PostgreSQL), so replicas copying the
//! same account take turns and the last write is of the latest read. A reconciliation reads
//! again each stored account its listing lacks before removing it: the listing may predate it.
//! Each stored change is announced on this system's own accounts exchange
//! (`Topology::accounts_exchange`), never on Kazoo's `configuration` exchange.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use webhooks_bus::{Bus, BusError, Delivery, Topology};
use webhooks_model::ids::AccountId;
use webhooks_model::notice::{Action, Change};
use webhooks_storage::{Account, NewAccount, StorageError, Store};

use super::crossbar::{CrossbarClient, CrossbarError};
use crate::accounts::generate_api_key;
use crate::operations::{self, Announcer};

/// Why accounts could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Crossbar could not be read.
    #[error(transparent)]
    Crossbar(#[from] CrossbarError),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Crossbar answered something that is not an account.
    #[error("unexpected account from Crossbar: {0}")]
    Unexpected(String),
}

/// What one reconciliation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Accounts Kazoo has.
    pub accounts: usize,
    /// Accounts created or changed in the store.
    pub written: usize,
    /// Accounts removed from the store, with their hooks and attempts.
    pub removed: usize,
}

/// An account as Crossbar describes it.
#[derive(Debug)]
struct KazooAccount {
    id: AccountId,
    name: String,
    /// Ancestors, root first.
    tree: Vec<AccountId>,
    superduper_admin: bool,
    /// What is kept of the rest: `realm`, `enabled`, `is_reseller`, `reseller_id`.
    doc: Map<String, Value>,
}

impl KazooAccount {
    /// The account of Crossbar's `data`, whose ancestors are `tree`.
    fn from_crossbar(data: &Value, tree: Vec<AccountId>) -> Result<Self, SyncError> {
        let id = parse_id(&data["id"])?;
        let mut doc = Map::new();
        // Kazoo reads a missing `pvt_enabled` as enabled.
        doc.insert("enabled".into(), Value::Bool(data["enabled"].as_bool().unwrap_or(true)));
        doc.insert("is_reseller".into(), Value::Bool(data["is_reseller"].as_bool().unwrap_or(false)));
        for key in ["realm", "reseller_id"] {
            if let Some(value) = data[key].as_str() {
                doc.insert(key.into(), Value::String(value.to_owned()));
            }
        }
        Ok(Self {
            id,
            name: data["name"].as_str().unwrap_or_default().to_owned(),
            tree,
            superduper_admin: data["superduper_admin"].as_bool().unwrap_or(false),
            doc,
        })
    }

    /// The account to write. Its API key is a random one nobody knows: in Kazoo mode keys are
    /// Kazoo's, and `api_auth` is Crossbar's.
    fn to_new(&self) -> NewAccount {
        NewAccount {
            id: self.id.clone(),
            name: self.name.clone(),
            parent: self.tree.split_last().map(|(parent, ancestors)| (parent.clone(), ancestors.to_vec())),
            api_key: generate_api_key(),
            superduper_admin: self.superduper_admin,
            doc: self.doc.clone(),
        }
    }
}

fn parse_id(value: &Value) -> Result<AccountId, SyncError> {
    value.as_str().and_then(|id| id.parse().ok()).ok_or_else(|| SyncError::Unexpected(format!("account id {value}")))
}

/// The ids of a list of `{id}` objects or of ids.
fn parse_tree(value: &Value) -> Result<Vec<AccountId>, SyncError> {
    let rows = value.as_array().ok_or_else(|| SyncError::Unexpected(format!("tree {value}")))?;
    rows.iter().map(|row| parse_id(if row.is_object() { &row["id"] } else { row })).collect()
}

/// What copying one account did.
enum Copied {
    /// Kazoo has it: stored as it is there.
    Stored(Box<Account>),
    /// Kazoo has it no longer: removed, with this many accounts (it and its stored descendants).
    Removed(usize),
}

/// Copies Kazoo's accounts into the store (see the module's documentation).
#[derive(Debug)]
pub struct AccountSync {
    store: Store,
    crossbar: Arc<CrossbarClient>,
    announcer: Announcer,
    configured_master: Option<AccountId>,
    /// One write of accounts at a time in this process, so a notice's write and a
    /// reconciliation's never interleave.
    writing: tokio::sync::Mutex<()>,
}

impl AccountSync {
    /// A sync reading `crossbar`, writing `store`, announcing with `announcer`; the master is
    /// `configured_master`, or else the account the API key logs in as.
    pub fn new(
        store: Store,
        crossbar: Arc<CrossbarClient>,
        announcer: Announcer,
        configured_master: Option<AccountId>,
    ) -> Self {
        Self { store, crossbar, announcer, configured_master, writing: tokio::sync::Mutex::new(()) }
    }

    /// The master account's id.
    async fn master(&self) -> Result<AccountId, SyncError> {
        match &self.configured_master {
            Some(id) => Ok(id.clone()),
            None => parse_id(&Value::String(self.crossbar.own_account_id().await?)),
        }
    }

    /// Crossbar's account `id` and its ancestors; `None` when Kazoo has no such account.
    async fn read(&self, id: &AccountId) -> Result<Option<KazooAccount>, SyncError> {
        let data = match self.crossbar.get(&["v2", "accounts", id.as_str()], &[]).await {
            Ok(answer) => answer["data"].clone(),
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let tree = match self.crossbar.get(&["v2", "accounts", id.as_str(), "tree"], &[]).await {
            Ok(answer) => parse_tree(&answer["data"])?,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        KazooAccount::from_crossbar(&data, tree).map(Some)
    }

    /// Writes `account` and announces what changed; the stored account.
    async fn write(&self, account: &KazooAccount) -> Result<(Account, bool), SyncError> {
        let new = account.to_new();
        let committed = match operations::sync_account(&self.store, &new).await {
            // Another replica inserted it meanwhile: write over its copy.
            Err(StorageError::Conflict) => operations::sync_account(&self.store, &new).await?,
            written => written?,
        };
        match committed {
            Some(committed) => Ok((committed.announce_later(&self.announcer), true)),
            None => {
                let stored = self.store.account(&account.id).await?;
                let stored = stored.ok_or_else(|| SyncError::Unexpected(format!("account {} vanished", account.id)))?;
                Ok((stored, false))
            }
        }
    }

    /// Removes account `id` and its stored descendants, deepest first, with their hooks and
    /// attempts; how many were removed.
    async fn remove(&self, id: &AccountId) -> Result<usize, SyncError> {
        let mut doomed = self.store.descendants(id).await?;
        doomed.sort_by_key(|account| std::cmp::Reverse(account.tree.len()));
        let mut removed = 0;
        for account_id in doomed.iter().map(|account| &account.id).chain([id]) {
            if let Some(committed) = operations::delete_account(&self.store, account_id).await? {
                committed.announce_later(&self.announcer);
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Reads account `id` from Crossbar and stores it, with its ancestors the store lacks
    /// (parents first); the stored account, or `None` (and the account removed) when Kazoo has
    /// no such account.
    pub async fn refresh(&self, id: &AccountId) -> Result<Option<Account>, SyncError> {
        let _writing = self.writing.lock().await;
        Ok(match self.copy(id).await? {
            Copied::Stored(account) => Some(*account),
            Copied::Removed(_) => None,
        })
    }

    /// Copies account `id` as Crossbar has it now: read and written under the account's copy
    /// lock, so that no other replica's copy of it comes in between (an older read written last
    /// would undo a deletion or a move).
    async fn copy(&self, id: &AccountId) -> Result<Copied, SyncError> {
        let _copying = self.store.lock_account_copy(id).await?;
        let Some(account) = self.read(id).await? else {
            return Ok(Copied::Removed(self.remove(id).await?));
        };
        for ancestor in &account.tree {
            if self.store.account(ancestor).await?.is_none() {
                let ancestor = self
                    .read(ancestor)
                    .await?
                    .ok_or_else(|| SyncError::Unexpected(format!("ancestor {ancestor} of {id} is unknown")))?;
                self.write(&ancestor).await?;
            }
        }
        Ok(Copied::Stored(Box::new(self.write(&account).await?.0)))
    }

    /// Makes the store hold exactly Kazoo's tree: the master and its descendants written,
    /// parents first, and stored accounts Kazoo no longer has removed.
    pub async fn reconcile(&self) -> Result<Reconciled, SyncError> {
        let master = self.master().await?;
        let mut rows = vec![(master.clone(), Vec::new())];
        let mut start_key: Option<String> = None;
        loop {
            let query: Vec<(&str, &str)> = start_key.iter().map(|key| ("start_key", key.as_str())).collect();
            let page = self.crossbar.get(&["v2", "accounts", master.as_str(), "descendants"], &query).await?;
            let listed = page["data"].as_array().ok_or_else(|| SyncError::Unexpected("descendants: no list".into()))?;
            for row in listed {
                rows.push((parse_id(&row["id"])?, parse_tree(&row["tree"])?));
            }
            start_key = match &page["next_start_key"] {
                Value::Null => None,
                Value::String(key) => Some(key.clone()),
                key => Some(key.to_string()),
            };
            if start_key.is_none() || listed.is_empty() {
                break;
            }
        }
        // Parents first: an account's tree is longer than each of its ancestors'.
        rows.sort_by_key(|(_, tree)| tree.len());

        let _writing = self.writing.lock().await;
        let mut reconciled = Reconciled { accounts: rows.len(), ..Reconciled::default() };
        let mut kept = std::collections::HashSet::new();
        for (id, tree) in rows {
            let _copying = self.store.lock_account_copy(&id).await?;
            let data = match self.crossbar.get(&["v2", "accounts", id.as_str()], &[]).await {
                Ok(answer) => answer["data"].clone(),
                // Deleted since it was listed.
                Err(error) if error.is_not_found() => continue,
                Err(error) => return Err(error.into()),
            };
            let account = KazooAccount::from_crossbar(&data, tree)?;
            if account.id == master && !(account.tree.is_empty() && account.superduper_admin) {
                tracing::warn!(account.id = %master, "the master account has ancestors or is no super-duper admin: set kazoo.master_account_id");
            }
            if self.write(&account).await?.1 {
                reconciled.written += 1;
            }
            kept.insert(id);
        }
        // Stored but not listed: deleted in Kazoo, or created after the listing was read (and
        // copied since, on a notice or a request). Each is read again to tell which.
        let mut stale: Vec<Account> =
            self.store.all_accounts().await?.into_iter().filter(|account| !kept.contains(&account.id)).collect();
        stale.sort_by_key(|account| std::cmp::Reverse(account.tree.len()));
        for account in stale {
            if let Copied::Removed(removed) = self.copy(&account.id).await? {
                reconciled.removed += removed;
            }
        }
        Ok(reconciled)
    }

    /// A reconciliation, its outcome logged.
    async fn reconcile_logged(&self, why: &'static str) {
        match self.reconcile().await {
            Ok(done) => tracing::info!(
                why,
                accounts = done.accounts,
                written = done.written,
                removed = done.removed,
                "Kazoo's accounts reconciled"
            ),
            Err(error) => tracing::warn!(why, %error, "Kazoo's accounts not reconciled; trying again later"),
        }
    }

    /// Answers a router's lookup of account `id`, which an event named and the router does not
    /// know: the account is read from Crossbar and announced, even when the store had it as
    /// Crossbar has it (the router may have missed its notice).
    async fn answer_lookup(&self, id: &AccountId) {
        match self.refresh(id).await {
            Ok(Some(_)) => {
                let change = Change::Account { action: Action::Edited, id: id.clone() };
                if let Err(error) = self.announcer.publish(&change).await {
                    tracing::warn!(account.id = %id, %error, "account looked up but not announced");
                }
            }
            Ok(None) => tracing::debug!(account.id = %id, "a router looked up an account Kazoo does not have"),
            Err(error) => tracing::warn!(account.id = %id, %error, "a router's account lookup not answered"),
        }
    }

    /// Applies one message of the account sync's queue: a router's account lookup, or one of
    /// Kazoo's account notices, for which the account is read again (the notice carries no
    /// document). Only Kazoo's data manager's notices count.
    async fn apply_notice(&self, delivery: &Delivery, topology: &Topology) {
        if let Some(id) = topology.account_lookup(&delivery.routing_key) {
            return self.answer_lookup(&id).await;
        }
        let body: Value = serde_json::from_slice(delivery.body.bytes()).unwrap_or(Value::Null);
        if body["App-Name"] != "datamgr" {
            tracing::debug!(routing_key = %delivery.routing_key, "an account notice not from Kazoo's data manager is ignored");
            return;
        }
        let Ok(Change::Account { id, .. }) = Change::parse(&body) else {
            tracing::debug!(routing_key = %delivery.routing_key, "not an account notice");
            return;
        };
        if let Err(error) = self.refresh(&id).await {
            // The next reconciliation repairs it.
            tracing::warn!(account.id = %id, %error, "Kazoo's account change not copied");
        }
    }

    /// Reconciles at once, then follows Kazoo's account notices on the queue the API replicas
    /// share, reconciling again every `interval` and after each reconnection to the broker,
    /// until `shutdown`.
    pub async fn follow(
        self: Arc<Self>,
        bus: Bus,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        let mut notices = bus.consume(&bus.topology().kazoo_accounts_queue(), 1).await?;
        let mut reconnections = bus.reconnections();
        let mut periodic = tokio::time::interval(interval.max(Duration::from_secs(1)));
        let mut reconnected = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                _ = periodic.tick() => self.reconcile_logged("periodic").await,
                _ = reconnected.tick(), if bus.reconnections() != reconnections => {
                    reconnections = bus.reconnections();
                    self.reconcile_logged("reconnected").await;
                }
                delivery = notices.next() => {
                    let Some(delivery) = delivery else { return Ok(()) };
                    self.apply_notice(&delivery, bus.topology()).await;
                    if let Err(error) = delivery.ack().await {
                        tracing::debug!(%error, "account notice not acknowledged; it comes again");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_account_keeps_its_flags_and_tree() {
        let data = json!({"id": "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d", "name": "Acme Customer",
            "realm": "acme.sip.example.net", "reseller_id": "b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2",
            "enabled": false, "language": "en-US"});
        let tree = parse_tree(&json!([{"id": "1f0e2d3c4b5a69788796a5b4c3d2e1f0", "name": "Acme Voice"},
            {"id": "b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2", "name": "Reseller One"}]))
        .expect("a tree");
        let account = KazooAccount::from_crossbar(&data, tree).expect("an account");
        let new = account.to_new();
        let (parent, ancestors) = new.parent.expect("a parent");
        assert_eq!(parent.as_str(), "b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2");
        assert_eq!(ancestors.len(), 1);
        assert_eq!(
            Value::Object(new.doc),
            json!({"enabled": false, "is_reseller": false,
            "realm": "acme.sip.example.net", "reseller_id": "b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2"})
        );
        assert!(!new.superduper_admin);
    }

    #[test]
    fn ids_that_are_not_account_ids_are_refused() {
        assert!(parse_tree(&json!(["not-an-id"])).is_err());
        assert!(KazooAccount::from_crossbar(&json!({"name": "no id"}), Vec::new()).is_err());
    }
}
