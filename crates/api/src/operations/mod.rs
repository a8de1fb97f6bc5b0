//! The operations more than one entry point performs on hooks, accounts and deliveries: the REST
//! API's handlers and the binary's operator commands call these same functions (and so do the
//! import of Kazoo's CouchDB documents and the sync of Kazoo's accounts), so that a hook is written,
//! re-enabled, announced or delivered again one way whoever asks.
//!
//! Each operation does its work in the store and returns what must then go on the bus, for the
//! caller to publish as suits it:
//! - a write returns its result as [`Committed`], holding the change notice routers need (Kazoo's
//!   document-change format). The API publishes it in the background, alongside its answer; an
//!   operator command publishes it and waits for the broker, or, without one, leaves the change to
//!   the routers' periodic reload.
//! - a redelivery ([`resend`], [`replay`]) returns the delivery jobs, which [`publish_jobs`] hands
//!   to the dispatchers.
//!
//! So a one-shot command connects to the broker only once there is something to publish, and a
//! dry run never does. No operation logs what it did: each entry point reports it its own way
//! (a log line, a line on an operator's terminal), and turns the store's and the bus's errors into
//! its own answers (Crossbar errors, an operator's message and exit code).

mod accounts;
mod export;
mod hooks;
mod import;
mod redelivery;

use std::sync::Arc;

use webhooks_bus::{Bus, BusError, Outgoing};
use webhooks_model::notice::Change;

pub use accounts::{create_account, delete_account, sync_account, update_account};
pub use export::{delete_hook_document, export_hooks, write_hooks};
pub use hooks::{create_webhook, delete_webhook, reenable_hooks, update_webhook};
pub use import::{
    ImportError, ImportOptions, ImportReport, Problem, Tally, import_accounts, import_attempts, import_hooks,
    import_limits,
};
pub use redelivery::{Unpublished, publish_jobs, replay, resend};

/// Publishes change notices on the bus in the name of `node` (a notice's `Node`).
#[derive(Debug, Clone)]
pub struct Announcer {
    bus: Bus,
    node: Arc<str>,
}

impl Announcer {
    /// Announces on `bus` as `node`.
    pub fn new(bus: Bus, node: impl Into<Arc<str>>) -> Self {
        Self { bus, node: node.into() }
    }

    /// Publishes the notice of `change` and waits for the broker's confirmation.
    pub async fn publish(&self, change: &Change) -> Result<(), BusError> {
        self.bus.publish(Outgoing::change_notice(self.bus.topology(), change, &self.node)).await
    }

    /// Publishes the notice of `change` without waiting for it; a failure is logged. Waiting for
    /// the broker's confirmation cost the API a third of its write throughput, and routers apply
    /// the notice within milliseconds either way.
    pub fn publish_later(&self, change: Change) {
        let announcer = self.clone();
        tokio::spawn(async move {
            if let Err(error) = announcer.publish(&change).await {
                tracing::warn!(error = %error, ?change, "change notice not published; routers apply it at their next reload");
            }
        });
    }
}

/// What a committed write returned, with the change routers must hear of. The write stands
/// whatever becomes of the notice: routers also reload the store periodically, so a notice lost
/// only delays the change.
#[derive(Debug)]
#[must_use = "routers learn of a write from its change notice: announce it, or say why not"]
pub struct Committed<T> {
    value: T,
    change: Change,
}

impl<T> Committed<T> {
    fn new(value: T, change: Change) -> Self {
        Self { value, change }
    }

    /// What the write returned.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The change to announce.
    pub fn change(&self) -> &Change {
        &self.change
    }

    /// Announces the change, waiting for the broker's confirmation; the value once it is
    /// confirmed.
    pub async fn announce(self, announcer: &Announcer) -> Result<T, BusError> {
        announcer.publish(&self.change).await?;
        Ok(self.value)
    }

    /// Announces the change in the background ([`Announcer::publish_later`]); the value at once.
    pub fn announce_later(self, announcer: &Announcer) -> T {
        announcer.publish_later(self.change);
        self.value
    }

    /// The value, the change left to the routers' periodic reload: for a caller that has no
    /// broker to publish on, or whose change no router indexes.
    pub fn unannounced(self) -> T {
        self.value
    }
}
