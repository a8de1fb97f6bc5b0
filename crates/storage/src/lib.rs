//! Persistence of the webhooks service: accounts and their tree, webhook documents, delivery
//! attempts and system settings, on PostgreSQL (production, shared by replicas) or SQLite (one
//! process).
//!
//! Diesel's `MultiConnection` puts both backends behind one connection type, so every query is
//! written once. Diesel is synchronous: each [`Store`] method borrows a pooled connection inside
//! `tokio::task::spawn_blocking`, never on the async runtime's threads.
//!
//! Invariants:
//! - Every tenant query takes the account id first and only sees that account's rows; descendant
//!   scoping uses the materialized account path (`root/.../self/`), one indexed range scan.
//! - JSON documents are stored as text with their key order preserved.
//! - Revisions are `<n>-<32 hex>`; `n` grows by one on every write of the document.

mod accounts;
pub mod admin;
mod attempts;
mod connection;
pub mod couch;
mod error;
mod failures;
mod imports;
mod locks;
mod migrations;
mod page;
mod revision;
mod schema;
mod secrets;
mod settings;
mod webhooks;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use diesel::RunQueryDsl;
use diesel::r2d2::{HandleError, Pool};
use webhooks_model::time::unix_millis;

pub use crate::accounts::{Account, NewAccount, Synced};
pub use crate::attempts::{Attempt, AttemptJob, NewAttempt, PRUNE_BATCH, RedeliveryError};
pub use crate::connection::Backend;
use crate::connection::{AnyConnection, Manager, Target, enable_wal};
pub use crate::error::{Result, StorageError};
pub use crate::imports::{ImportOutcome, ImportedSource, ImportedWebhook};
pub use crate::locks::AccountCopyLock;
pub use crate::page::{Page, PageRequest};
pub use crate::webhooks::{NewWebhook, Webhook, WebhookChange};

/// How long a caller waits for a pooled connection before giving up. Short: a healthy pool
/// hands one over in milliseconds, and a caller of an unreachable database (an API client, a
/// dispatcher with records to write) is better told at once, so it can answer 503 or buffer.
const POOL_WAIT: Duration = Duration::from_millis(500);
/// After a connection to the database failed, how long every call fails at once with
/// [`StorageError::Unavailable`] (milliseconds) instead of waiting [`POOL_WAIT`] again. Each failed connection
/// attempt (the pool keeps trying in the background) extends it; the first call after it tries
/// the database again.
const OUTAGE_HOLD_MS: i64 = 1_000;

/// The database: a cheap-to-clone handle on a connection pool.
#[derive(Clone)]
pub struct Store {
    /// The pool; r2d2 pools are reference-counted, so clones share it.
    pool: Pool<Manager>,
    /// Which product is behind the pool.
    backend: Backend,
    /// Whether the database was just found unreachable; shared by clones.
    outage: Arc<Outage>,
}

/// Until when calls fail at once: the database was found unreachable just before.
#[derive(Debug, Default)]
struct Outage {
    /// Unix milliseconds; 0 when no connection failed lately.
    until_ms: AtomicI64,
}

impl Outage {
    /// A connection failed now.
    fn begin(&self) {
        self.until_ms.store(unix_millis().saturating_add(OUTAGE_HOLD_MS), Ordering::Relaxed);
    }

    /// Whether calls should fail without trying.
    fn holds(&self) -> bool {
        unix_millis() < self.until_ms.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is left out on purpose: it may carry a password.
        formatter.debug_struct("Store").field("backend", &self.backend).finish_non_exhaustive()
    }
}

/// Sends r2d2's connection failures to tracing instead of the `log` crate, and marks the
/// database unreachable for a moment, so callers fail fast meanwhile.
#[derive(Debug)]
struct TracingErrorHandler(Arc<Outage>);

impl HandleError<diesel::r2d2::Error> for TracingErrorHandler {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        if !self.0.holds() {
            tracing::warn!(error = %error, "database connection failed");
        }
        self.0.begin();
    }
}

impl Store {
    /// Connects to `url`: `sqlite://PATH` (relative or absolute; the file is created if missing,
    /// in WAL mode, with a busy timeout and foreign keys enforced) or `postgres://...` /
    /// `postgresql://...`. At most `max_connections` connections are open at once.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        let target = Target::parse(url)?;
        let backend = target.backend;
        let outage = Arc::new(Outage::default());
        tokio::task::spawn_blocking(move || {
            // One connection up front reports an unreachable database at once and with its real
            // cause; the pool alone would only time out later.
            let mut first = target.establish().map_err(StorageError::Connect)?;
            enable_wal(&mut first)?;
            drop(first);
            let pool = Pool::builder()
                .max_size(max_connections.max(1))
                // Open connections only when a caller waits for one: many stores (tests, tools) may
                // share one server, and a connection opened in the background could still be in
                // libpq's TLS setup when the process exits, racing OpenSSL's exit-time cleanup.
                .min_idle(Some(0))
                .connection_timeout(POOL_WAIT)
                // No `SELECT 1` before each use: a round trip per query is too dear, and a
                // connection that failed is dropped by `has_broken` and replaced.
                .test_on_check_out(false)
                .error_handler(Box::new(TracingErrorHandler(Arc::clone(&outage))))
                .build_unchecked(Manager { target });
            tracing::debug!(?backend, max_connections, "database pool ready");
            Ok(Store { pool, backend, outage })
        })
        .await?
    }

    /// Which backend this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the embedded migrations of this backend that are not applied yet. Idempotent; on
    /// PostgreSQL serialized with an advisory lock so several replicas may start at once.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn migrate(&self) -> Result<()> {
        self.run(migrations::run).await
    }

    /// Checks, without writing anything, that every migration of this build is applied;
    /// [`StorageError::SchemaBehind`] names those that are not.
    pub async fn check_schema(&self) -> Result<()> {
        let missing = self.run(migrations::missing).await?;
        if missing.is_empty() { Ok(()) } else { Err(StorageError::SchemaBehind(missing)) }
    }

    /// Cheap liveness check of the database (`SELECT 1`).
    pub async fn ping(&self) -> Result<()> {
        self.run(|connection| {
            // `SELECT 1` spelled through a table-free diesel query so it runs on both backends.
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
                .first::<i32>(connection)
                .map(|_| ())
                .map_err(StorageError::from)
        })
        .await
    }

    /// Connections the pool holds, and how many of them are idle (for metrics).
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    /// Runs `work` with a pooled connection on the blocking thread pool.
    async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T> + Send + 'static,
    {
        if self.outage.holds() {
            return Err(StorageError::Unavailable);
        }
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut pooled = pool.get()?;
            let result = work(&mut pooled.connection);
            if result.as_ref().is_err_and(StorageError::is_unavailable) {
                pooled.dead = true;
            }
            result
        })
        .await?
    }
}
