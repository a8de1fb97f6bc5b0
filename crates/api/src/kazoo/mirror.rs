//! The mirror of hook writes into Kazoo's CouchDB (`kazoo.couch_url`): every hook change notice
//! (the API's writes, the dispatcher's auto-disable, bulk re-enables, operator commands) is taken
//! from a queue the API replicas share (`Topology::couch_mirror_queue`, competing consumers, so
//! each is mirrored once), the hook read from the store as it is now and written into Kazoo's
//! `webhooks` database in Kazoo's format, or deleted there. Kazoo's mailer reads a disabled hook
//! there for its `webhook_disabled` email. A notice is acknowledged once CouchDB has the hook;
//! while CouchDB (or the store) fails, it is tried again after a growing wait, the notices after
//! it waiting in the queue: nothing of this holds up an answer of the API.

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use webhooks_bus::{Bus, BusError, Delivery};
use webhooks_model::notice::{Action, Change};
use webhooks_storage::couch::CouchDb;
use webhooks_storage::{Store, Webhook};

use crate::operations::{self, ImportError, Tally};

/// The first wait before a failed write is tried again; it doubles up to [`MAX_RETRY_WAIT`].
const RETRY_WAIT: Duration = Duration::from_millis(500);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// Mirrors hook writes into Kazoo's CouchDB.
#[derive(Debug, Clone)]
pub struct CouchMirror {
    store: Store,
    couch: CouchDb,
}

impl CouchMirror {
    /// A mirror of `store`'s hooks into `couch`.
    pub fn new(store: Store, couch: CouchDb) -> Self {
        Self { store, couch }
    }

    /// Mirrors the hook change notices of the mirror queue until `shutdown`.
    pub async fn follow(self, bus: Bus, shutdown: CancellationToken) -> Result<(), BusError> {
        let mut notices = bus.consume(&bus.topology().couch_mirror_queue(), 1).await?;
        let mut wait = RETRY_WAIT;
        loop {
            let delivery = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                delivery = notices.next() => delivery,
            };
            let Some(delivery) = delivery else { return Ok(()) };
            match self.mirror(&delivery).await {
                Ok(()) => {
                    wait = RETRY_WAIT;
                    if let Err(error) = delivery.ack().await {
                        tracing::debug!(%error, "mirrored notice not acknowledged; it comes again");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = wait.as_millis(), "hook write not mirrored into CouchDB");
                    // Cut short by a shutdown: the notice is requeued all the same.
                    let _ = tokio::time::timeout(wait, shutdown.cancelled()).await;
                    wait = (wait * 2).min(MAX_RETRY_WAIT);
                    if let Err(error) = delivery.requeue().await {
                        tracing::debug!(%error, "notice not requeued; the broker redelivers it");
                    }
                }
            }
        }
    }

    /// Mirrors what one notice says changed; anything but a hook change is passed over.
    async fn mirror(&self, delivery: &Delivery) -> Result<(), ImportError> {
        let Some(change) =
            serde_json::from_slice::<Value>(delivery.body.bytes()).ok().and_then(|body| Change::parse(&body).ok())
        else {
            return Ok(());
        };
        match change {
            Change::Webhook { action: Action::Deleted, id, .. } => {
                operations::delete_hook_document(&self.couch, &id).await
            }
            Change::Webhook { id, .. } => match self.store.webhook_by_id(&id).await? {
                Some(hook) => self.write(&[hook]).await,
                None => operations::delete_hook_document(&self.couch, &id).await,
            },
            Change::Reenabled { account_id, descendants } => {
                self.write(&self.store.enabled_webhooks_of(&account_id, descendants).await?).await
            }
            Change::Account { .. } => Ok(()),
        }
    }

    /// Writes `hooks`; an error when CouchDB refused one (another writer got in between).
    async fn write(&self, hooks: &[Webhook]) -> Result<(), ImportError> {
        let refused = operations::write_hooks(&self.couch, hooks, &mut Tally::default()).await?;
        match refused.first() {
            None => Ok(()),
            Some(problem) => Err(ImportError::Refused(format!("{}: {}", problem.source, problem.reason))),
        }
    }
}
