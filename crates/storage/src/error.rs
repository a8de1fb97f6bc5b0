//! The one error type of the storage crate.

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database URL is neither `sqlite://PATH` nor `postgres://...`/`postgresql://...`.
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    /// A first connection to the database could not be established.
    #[error("cannot connect to the database")]
    Connect(#[source] diesel::r2d2::Error),
    /// No pooled connection became available in time.
    #[error("no database connection available")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// A connection to the database failed a moment ago: the call was not tried.
    #[error("the database is unreachable")]
    Unavailable,
    /// A statement failed.
    #[error("database query failed")]
    Query(#[from] diesel::result::Error),
    /// Applying the embedded migrations failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The database lacks migrations of this build, and applying them is left to others.
    #[error("the database schema lacks migrations {} of this build: run `webhooks migrate` first", .0.join(", "))]
    SchemaBehind(Vec<String>),
    /// The stored revision is not the expected one, or the id (or API key) is already in use.
    #[error("conflicting document revision or id")]
    Conflict,
    /// A pagination start key this store did not issue.
    #[error("invalid start key")]
    InvalidStartKey,
    /// The parent named for a new account does not exist, or its tree is not the one given.
    #[error("parent account {0} not found with the given tree")]
    UnknownParent(String),
    /// An account that still has sub-accounts cannot be deleted.
    #[error("account {0} has sub-accounts")]
    HasChildren(String),
    /// A stored row or JSON document cannot be read back.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The blocking task running the statements panicked or was cancelled.
    #[error("database task failed")]
    Task(#[from] tokio::task::JoinError),
}

impl StorageError {
    /// Whether the database could not be reached (or the connection broke): nothing was done,
    /// and the same call may succeed later. Callers answer 503, or keep the work for later.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        matches!(
            self,
            Self::Connect(_)
                | Self::Pool(_)
                | Self::Unavailable
                | Self::Query(Error::DatabaseError(
                    DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                    _,
                ))
        )
    }
}

/// The result of storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Turns unique-key violations into [`StorageError::Conflict`]; every other error stays a query error.
pub(crate) fn conflict_on_duplicate(error: diesel::result::Error) -> StorageError {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => StorageError::Conflict,
        other => StorageError::Query(other),
    }
}
