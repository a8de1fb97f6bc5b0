//! Throwaway databases for tests: a fresh PostgreSQL database on the test server, or a SQLite
//! file in the temporary directory. Each is removed when dropped.

use std::path::PathBuf;

use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use webhooks_storage::Store;

/// The PostgreSQL server tests use unless `WEBHOOKS_TEST_POSTGRES_URL` names another.
const DEFAULT_POSTGRES_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// Connections per test store: enough for the concurrency tests, small enough that many tests
/// share one server.
const TEST_POOL_SIZE: u32 = 8;

/// What to remove on drop.
enum Cleanup {
    /// Drop this database, connecting to the server's maintenance database at this URL.
    Postgres { maintenance_url: String, name: String },
    /// Remove this SQLite file and its WAL companions.
    Sqlite { path: PathBuf },
}

/// A database of its own for one test, removed (best effort) when dropped.
pub struct TestDatabase {
    /// The URL a [`Store`] connects to.
    url: String,
    /// How to remove it.
    cleanup: Cleanup,
}

impl TestDatabase {
    /// A new, empty, uniquely named database on the PostgreSQL server at
    /// `WEBHOOKS_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`).
    pub async fn postgres() -> TestDatabase {
        let server = std::env::var("WEBHOOKS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_SERVER.to_owned());
        let name = format!("webhooks_test_{}", uuid::Uuid::new_v4().simple());
        let maintenance_url = database_url(&server, "postgres");
        let url = database_url(&server, &name);
        let (create_url, create_name) = (maintenance_url.clone(), name.clone());
        tokio::task::spawn_blocking(move || {
            let mut connection = PgConnection::establish(&create_url)
                .unwrap_or_else(|error| panic!("cannot reach the test PostgreSQL server: {error}"));
            // The name is ours (hex and underscores), so quoting it is enough.
            diesel::sql_query(format!("CREATE DATABASE \"{create_name}\""))
                .execute(&mut connection)
                .unwrap_or_else(|error| panic!("cannot create test database {create_name}: {error}"));
        })
        .await
        .unwrap_or_else(|error| panic!("creating the test database panicked: {error}"));
        TestDatabase { url, cleanup: Cleanup::Postgres { maintenance_url, name } }
    }

    /// A new SQLite file in the temporary directory (created on first connection).
    pub async fn sqlite() -> TestDatabase {
        let path = std::env::temp_dir().join(format!("webhooks-test-{}.db", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite://{}", path.display());
        TestDatabase { url, cleanup: Cleanup::Sqlite { path } }
    }

    /// The database URL, as the service's configuration takes it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Makes this PostgreSQL database unreachable (`false`: new connections are refused and the
    /// open ones ended, as in an outage) or reachable again (`true`). The server itself, and every
    /// other test's database, stay up.
    pub async fn set_reachable(&self, reachable: bool) {
        let Cleanup::Postgres { maintenance_url, name } = &self.cleanup else {
            panic!("only a PostgreSQL test database can be made unreachable");
        };
        let (maintenance_url, name) = (maintenance_url.clone(), name.clone());
        tokio::task::spawn_blocking(move || {
            let mut connection = PgConnection::establish(&maintenance_url)
                .unwrap_or_else(|error| panic!("cannot reach the test PostgreSQL server: {error}"));
            // The name is ours (hex and underscores), so quoting it is enough.
            diesel::sql_query(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {reachable}"))
                .execute(&mut connection)
                .unwrap_or_else(|error| panic!("cannot change test database {name}: {error}"));
            if !reachable {
                diesel::sql_query(format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
                ))
                .execute(&mut connection)
                .unwrap_or_else(|error| panic!("cannot end the sessions of {name}: {error}"));
            }
        })
        .await
        .unwrap_or_else(|error| panic!("changing the test database panicked: {error}"));
    }

    /// Runs `sql` on this database over a connection of its own, outside any store: for a test
    /// that needs the database in a state the store would never leave it in.
    pub async fn execute(&self, sql: &str) {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        tokio::task::spawn_blocking(move || {
            // Two arms, as diesel's connections have no common object type.
            let executed = match url.strip_prefix("sqlite://") {
                Some(path) => {
                    SqliteConnection::establish(path).map_err(|error| error.to_string()).and_then(|mut connection| {
                        diesel::sql_query(&sql).execute(&mut connection).map_err(|error| error.to_string())
                    })
                }
                None => PgConnection::establish(&url).map_err(|error| error.to_string()).and_then(|mut connection| {
                    diesel::sql_query(&sql).execute(&mut connection).map_err(|error| error.to_string())
                }),
            };
            executed.unwrap_or_else(|error| panic!("cannot run {sql:?} on the test database: {error}"));
        })
        .await
        .unwrap_or_else(|error| panic!("running SQL on the test database panicked: {error}"));
    }

    /// A store connected to this database, migrated.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url, TEST_POOL_SIZE)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to the test database: {error}"));
        store.migrate().await.unwrap_or_else(|error| panic!("cannot migrate the test database: {error}"));
        store
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Postgres { maintenance_url, name } => {
                let (maintenance_url, name) = (maintenance_url.clone(), name.clone());
                // A thread of its own: Drop may run on an async runtime's worker, which must not
                // block, and cannot await.
                let dropped = std::thread::spawn(move || {
                    let mut connection = PgConnection::establish(&maintenance_url).ok()?;
                    // FORCE ends the sessions stores still hold open.
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut connection)
                        .ok()
                })
                .join();
                if !matches!(dropped, Ok(Some(_))) {
                    warn_not_dropped(&self.url);
                }
            }
            Cleanup::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    // Missing companions are normal; anything else is left for the OS to clean.
                    let _ = std::fs::remove_file(file);
                }
            }
        }
    }
}

/// Reports a test database that could not be dropped, on stderr (tests have no subscriber).
fn warn_not_dropped(url: &str) {
    eprintln!("warning: could not drop test database {url}");
}

/// `server` (a PostgreSQL URL with or without a database) pointed at `database`, keeping any
/// query parameters.
fn database_url(server: &str, database: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server, None),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn a_server_url_gets_the_database_name_with_its_parameters_kept() {
        assert_eq!(database_url("postgres://postgres@127.0.0.1:5432", "x"), "postgres://postgres@127.0.0.1:5432/x");
        assert_eq!(database_url("postgres://u@h:1/old", "x"), "postgres://u@h:1/x");
        assert_eq!(database_url("postgres://u@h/?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    }
}
