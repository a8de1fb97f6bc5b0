//! Connections to either backend behind one diesel connection type, and their pool.

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{ManageConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};

use crate::error::{Result, StorageError};

/// How long a SQLite statement waits for another connection's write lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The database product behind a [`Store`](crate::Store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL: the production backend, shared by every replica.
    Postgres,
    /// SQLite: a single file, for one process (development, small installs, tests).
    Sqlite,
}

/// One connection to either backend; queries written once run on both.
#[derive(diesel::MultiConnection)]
pub(crate) enum AnyConnection {
    /// A PostgreSQL connection.
    Postgres(PgConnection),
    /// A SQLite connection.
    Sqlite(SqliteConnection),
}

/// Where to connect, parsed from the database URL.
#[derive(Clone)]
pub(crate) struct Target {
    /// Which backend.
    pub(crate) backend: Backend,
    /// The libpq URL, or the SQLite file path.
    location: String,
}

impl Target {
    /// Parses `sqlite://PATH`, `postgres://...` or `postgresql://...`.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StorageError::InvalidUrl("sqlite:// needs a file path".into()));
            }
            // A plain path, not diesel's `file:` URI rewrite, so `?` and `#` in names stay literal.
            return Ok(Self { backend: Backend::Sqlite, location: path.to_owned() });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self { backend: Backend::Postgres, location: url.to_owned() });
        }
        // Only the scheme is echoed back: the rest may hold a password.
        let scheme = url.split_once("://").map_or("(none)", |(scheme, _)| scheme);
        Err(StorageError::InvalidUrl(format!("unsupported scheme {scheme}")))
    }

    /// Opens one connection and prepares it for use.
    pub(crate) fn establish(&self) -> Result<AnyConnection, diesel::r2d2::Error> {
        match self.backend {
            Backend::Postgres => Ok(AnyConnection::Postgres(PgConnection::establish(&self.location)?)),
            Backend::Sqlite => {
                let mut connection = SqliteConnection::establish(&self.location)?;
                // Per-connection settings: wait for writers instead of failing at once, and
                // enforce the foreign keys the schema declares (SQLite ignores them otherwise).
                connection.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                    SQLITE_BUSY_TIMEOUT.as_millis()
                ))?;
                Ok(AnyConnection::Sqlite(connection))
            }
        }
    }
}

/// Switches a SQLite database to write-ahead logging, so readers never wait for the writer.
/// The mode is stored in the file, so once per database is enough.
///
/// Changing the journal mode needs the database to itself and SQLite does not wait for that
/// through `busy_timeout`, so when several processes open a new database at once the switch is
/// retried until the busy timeout has passed.
pub(crate) fn enable_wal(connection: &mut AnyConnection) -> Result<()> {
    let AnyConnection::Sqlite(sqlite) = connection else { return Ok(()) };
    let deadline = std::time::Instant::now() + SQLITE_BUSY_TIMEOUT;
    loop {
        match sqlite.batch_execute("PRAGMA journal_mode = WAL;") {
            Ok(()) => return Ok(()),
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("locked") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// A pooled connection, with whether it was found dead.
pub(crate) struct Pooled {
    /// The connection.
    pub(crate) connection: AnyConnection,
    /// The server went away under it (a statement failed for a closed connection): libpq does
    /// not reconnect, so it must leave the pool rather than fail every later statement.
    pub(crate) dead: bool,
}

/// The r2d2 manager: opens connections for one [`Target`].
pub(crate) struct Manager {
    /// Where connections go.
    pub(crate) target: Target,
}

impl ManageConnection for Manager {
    type Connection = Pooled;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Pooled, diesel::r2d2::Error> {
        Ok(Pooled { connection: self.target.establish()?, dead: false })
    }

    fn is_valid(&self, pooled: &mut Pooled) -> Result<(), diesel::r2d2::Error> {
        pooled.connection.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        // A panic mid-transaction leaves the connection in an unknown state.
        pooled.dead || std::thread::panicking() || pooled.connection.is_broken()
    }
}

/// Runs `work` in a transaction that may write.
///
/// On SQLite the transaction starts with `BEGIN IMMEDIATE`, taking the write lock up front: a
/// deferred transaction that reads and then writes fails with `SQLITE_BUSY` (without waiting)
/// when another connection wrote in between. On PostgreSQL it is an ordinary transaction.
pub(crate) fn write_transaction<T>(
    connection: &mut AnyConnection,
    work: impl FnOnce(&mut AnyConnection) -> Result<T>,
) -> Result<T> {
    transaction(connection, true, work)
}

/// [`write_transaction`], rolled back even when `work` succeeds unless `commit`: a trial run
/// (an import's `--dry-run`) sees what it would write, and writes nothing.
pub(crate) fn transaction<T>(
    connection: &mut AnyConnection,
    commit: bool,
    work: impl FnOnce(&mut AnyConnection) -> Result<T>,
) -> Result<T> {
    match connection {
        AnyConnection::Sqlite(sqlite) => {
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
        }
        AnyConnection::Postgres(_) => AnyConnection::begin_transaction(connection)?,
    }
    match work(connection) {
        Ok(value) if commit => {
            AnyConnection::commit_transaction(connection)?;
            Ok(value)
        }
        Ok(value) => {
            AnyConnection::rollback_transaction(connection)?;
            Ok(value)
        }
        Err(error) => {
            match AnyConnection::rollback_transaction(connection) {
                // The original error says more than a broken transaction manager does.
                Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => {}
                Err(rollback_error) => return Err(rollback_error.into()),
            }
            Err(error)
        }
    }
}

/// Serializes writers across PostgreSQL sessions (replicas) until the current transaction ends,
/// keyed by `key`. SQLite needs nothing: [`write_transaction`] already holds its only write lock.
pub(crate) fn lock_for_transaction(connection: &mut AnyConnection, key: i64) -> Result<()> {
    if let AnyConnection::Postgres(postgres) = connection {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(key)
            .execute(postgres)?;
    }
    Ok(())
}
