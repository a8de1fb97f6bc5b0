//! The embedded per-backend migrations and how they are applied.

use diesel::RunQueryDsl;
use diesel::sql_types::BigInt;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::connection::AnyConnection;
use crate::error::{Result, StorageError};

/// Migrations for PostgreSQL.
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Migrations for SQLite.
const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The PostgreSQL advisory lock key held while migrating ("webhmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x7765_6268_6d69_6772;

/// Applies the pending migrations of the connection's backend.
pub(crate) fn run(connection: &mut AnyConnection) -> Result<()> {
    let applied = match connection {
        AnyConnection::Postgres(postgres) => {
            // Replicas starting together would otherwise race on the same DDL. A session lock,
            // because diesel runs each migration in its own transaction.
            diesel::sql_query("SELECT pg_advisory_lock($1)").bind::<BigInt, _>(MIGRATION_LOCK).execute(postgres)?;
            let outcome = postgres.run_pending_migrations(POSTGRES).map(|versions| versions.len());
            // Unlock even when migrating failed: the connection goes back to the pool.
            diesel::sql_query("SELECT pg_advisory_unlock($1)").bind::<BigInt, _>(MIGRATION_LOCK).execute(postgres)?;
            outcome
        }
        // One write transaction around all of it: SQLite has a single writer, so concurrent
        // callers wait and then find nothing pending (diesel's own transactions nest as savepoints).
        AnyConnection::Sqlite(sqlite) => {
            sqlite.immediate_transaction(|sqlite| sqlite.run_pending_migrations(SQLITE).map(|versions| versions.len()))
        }
    }
    .map_err(|error| StorageError::Migration(error.to_string()))?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(())
}
