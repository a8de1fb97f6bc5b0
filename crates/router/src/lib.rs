//! The event router: Kazoo events in, delivery jobs out (docs/kazoo.md#event-processing).
//!
//! The router consumes Kazoo's bus events from one shared durable queue, matches each against an
//! in-memory [`index::HookIndex`] of accounts and enabled hooks, builds every matching hook's
//! payload ([`route`]), and publishes the resulting [`webhooks_model::job::JobBatch`]es to the
//! dispatcher's queue. The index is loaded from the store at start, kept current by change
//! notices from the API (every router has a private queue for them, so each sees every change),
//! and reloaded in full every [`RouterSettings::reload_interval`] as a safety net.
//!
//! Delivery guarantee: an event is acknowledged only after every job it produced is confirmed by
//! the broker, so a crash or a publish failure redelivers it and nothing is lost;
//! a crash between the confirm and the acknowledgement produces duplicate jobs (at least once).
//!
//! Entry points: [`run`] for the binary, or [`Router::start`] then [`Router::run`] when the caller
//! must know that the router is ready (index loaded, queues consumed) before going on.

mod batch;
pub mod index;
mod lookup;
mod numbers;
pub mod route;
mod service;
mod settle;
mod stats;
mod sync;

use std::time::Duration;

use webhooks_model::config::RouterConfig;
use webhooks_model::payload::{PayloadCompat, ReservedCcvKeys};
use webhooks_storage::couch::CouchDb;

pub use crate::batch::EVENT_SPAN;
pub use crate::service::{Router, run};
pub use crate::stats::RouterStats;

/// Hooks read from the store per page when the index is (re)loaded: big enough to keep round
/// trips few, small enough that a page of documents is a small fraction of the index.
pub const RELOAD_PAGE_SIZE: u32 = 1_000;

/// How long a look-up of a number's owner in Kazoo's CouchDB may take: short, since the router
/// waits for the answer before routing on ([`RouterSettings::numbers`]).
pub const NUMBER_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The router's settings.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// The cluster id every payload carries, set last over any other value.
    pub cluster_id: String,
    /// Unacknowledged events held at once; also the largest batch routed together.
    pub prefetch: u16,
    /// Time between full reloads of the index (change notices keep it current between).
    pub reload_interval: Duration,
    /// Jobs carried by one bus message at most.
    pub max_jobs_per_message: usize,
    /// CCV keys kept out of channel payloads (`call_command.reserved_ccv_keys`).
    pub reserved_ccv_keys: ReservedCcvKeys,
    /// Which Kazoo release's payloads receivers get (`kazoo.payload_compat`).
    pub payload_compat: PayloadCompat,
    /// Wait after a failed publish or reload before trying again, so an outage is not a busy loop.
    pub retry_backoff: Duration,
    /// Hooks read from the store per page when the index is (re)loaded.
    pub reload_page_size: u32,
    /// Kazoo's CouchDB (`kazoo.couch_url`), where the account of a call whose event names none
    /// is found by the dialled number; without it such events are skipped.
    pub numbers: Option<CouchDb>,
}

impl RouterSettings {
    /// The defaults: prefetch 500, reload every 300 s, 100 jobs per message, Kazoo's reserved
    /// CCV keys, one second between retries.
    pub fn new(cluster_id: impl Into<String>) -> Self {
        Self::from_config(&RouterConfig::default(), cluster_id)
    }

    /// The settings of the `router` configuration section.
    pub fn from_config(config: &RouterConfig, cluster_id: impl Into<String>) -> Self {
        Self {
            cluster_id: cluster_id.into(),
            prefetch: config.prefetch.max(1),
            reload_interval: Duration::from_secs(config.reload_interval_seconds.max(1)),
            max_jobs_per_message: config.max_jobs_per_message.max(1),
            reserved_ccv_keys: ReservedCcvKeys::default(),
            payload_compat: PayloadCompat::default(),
            retry_backoff: Duration::from_secs(1),
            reload_page_size: RELOAD_PAGE_SIZE,
            numbers: None,
        }
    }
}

/// Why the router stopped.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The store could not be read while loading the index at start.
    #[error("cannot load the hook index from the store")]
    Store(#[from] webhooks_storage::StorageError),
    /// The bus refused to declare or consume the router's queues.
    #[error("bus failure")]
    Bus(#[from] webhooks_bus::BusError),
    /// A consumer ended although the router was not shutting down.
    #[error("the {0} consumer stopped")]
    ConsumerClosed(&'static str),
}
