//! The embedded per-backend migrations and how they are applied.

use diesel::RunQueryDsl;
use diesel::backend::Backend;
use diesel::migration::MigrationSource;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::connection::AnyConnection;
use crate::error::{Result, StorageError};

/// Migrations for PostgreSQL.
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Migrations for SQLite.
const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The table in which diesel records the migrations it applied.
const RECORD: &str = "__diesel_schema_migrations";

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

/// The versions of this backend's migrations that the database lacks, read without writing
/// anything: a database whose migrations are applied by someone else (runtime credentials
/// without DDL rights) is only checked. Versions the database has and this build does not (a
/// newer build migrated it) are no obstacle.
pub(crate) fn missing(connection: &mut AnyConnection) -> Result<Vec<String>> {
    let applied = applied(connection)?;
    let wanted = match connection {
        AnyConnection::Postgres(_) => versions::<diesel::pg::Pg>(&POSTGRES),
        AnyConnection::Sqlite(_) => versions::<diesel::sqlite::Sqlite>(&SQLITE),
    }?;
    Ok(wanted.into_iter().filter(|version| !applied.contains(version)).collect())
}

/// The versions the database records as applied; none when it has no record of any.
fn applied(connection: &mut AnyConnection) -> Result<Vec<String>> {
    #[derive(diesel::QueryableByName)]
    struct Applied {
        #[diesel(sql_type = Text)]
        version: String,
    }
    if !has_record(connection)? {
        return Ok(Vec::new());
    }
    // Diesel's own record of what it applied. Its `applied_migrations` would create the table
    // when it is missing, which takes the rights this check is for doing without. Any failure to
    // read it (no right to, another shape) is reported: it says nothing of what is applied.
    let rows = diesel::sql_query(format!("SELECT version FROM {RECORD}")).load::<Applied>(connection)?;
    Ok(rows.into_iter().map(|row| row.version).collect())
}

/// Whether diesel's record of applied migrations exists, asked of the catalogue so that only its
/// absence means "nothing applied".
fn has_record(connection: &mut AnyConnection) -> Result<bool> {
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = Bool)]
        present: bool,
    }
    let query = match connection {
        AnyConnection::Postgres(_) => format!("SELECT to_regclass('{RECORD}') IS NOT NULL AS present"),
        AnyConnection::Sqlite(_) => {
            format!("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{RECORD}') AS present")
        }
    };
    let rows = diesel::sql_query(query).load::<Exists>(connection)?;
    Ok(rows.first().is_some_and(|row| row.present))
}

/// The versions of `source`'s migrations.
fn versions<DB: Backend>(source: &EmbeddedMigrations) -> Result<Vec<String>>
where
    EmbeddedMigrations: MigrationSource<DB>,
{
    let migrations =
        MigrationSource::<DB>::migrations(source).map_err(|error| StorageError::Migration(error.to_string()))?;
    Ok(migrations.iter().map(|migration| migration.name().version().to_string()).collect())
}
