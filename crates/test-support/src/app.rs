//! The API served on a free port of 127.0.0.1, in-process, over a test database.

use std::net::TcpListener;

use tokio_util::sync::CancellationToken;
use webhooks_api::ops::Health;
use webhooks_api::{ApiSettings, ApiState};
use webhooks_bus::{Bus, Topology};
use webhooks_model::config::{ApiConfig, KazooConfig};
use webhooks_storage::Store;

use crate::db::TestDatabase;
use crate::http::Client;

/// A running API with its master account.
pub struct TestApp {
    /// A client for it.
    pub client: Client,
    /// The store behind it, for arranging and checking state directly.
    pub store: Store,
    /// The in-process bus it announces changes and publishes ingested events on.
    pub bus: Bus,
    /// The master account's id.
    pub master_id: String,
    /// The master account's API key.
    pub master_key: String,
    shutdown: CancellationToken,
    _database: TestDatabase,
}

/// The `cluster_id` a [`TestApp`] puts in the payloads it builds.
pub const TEST_CLUSTER_ID: &str = "cluster-under-test";

impl TestApp {
    /// The database behind it (to cut it off, say).
    pub fn database(&self) -> &TestDatabase {
        &self._database
    }

    /// Serves the API over `database` and a fresh in-process bus (private targets allowed, as
    /// tests use 127.0.0.1).
    pub async fn spawn(database: TestDatabase) -> Self {
        let bus = Bus::connect(None, Topology::new("webhooks")).await.expect("the in-process bus starts");
        Self::spawn_on(database, bus).await
    }

    /// Serves the API over `database` and `bus`, with [`TestApp::settings`].
    pub async fn spawn_on(database: TestDatabase, bus: Bus) -> Self {
        Self::spawn_with(database, bus, Self::settings()).await
    }

    /// The settings of [`TestApp::spawn`]: private targets allowed (tests call 127.0.0.1), one
    /// worker, 64 KiB bodies.
    pub fn settings() -> ApiSettings {
        ApiSettings {
            api: ApiConfig {
                workers: 1,
                max_body_bytes: 64 * 1024,
                // No dispatcher answers here: a test callout's wait is kept short.
                test_wait_seconds: 2,
                ..ApiConfig::default()
            },
            node: "webhooks".to_owned(),
            allow_private_targets: true,
            cluster_id: TEST_CLUSTER_ID.to_owned(),
            kazoo: KazooConfig::default(),
        }
    }

    /// Serves the API over `database` and `bus` with `settings`.
    pub async fn spawn_with(database: TestDatabase, bus: Bus, settings: ApiSettings) -> Self {
        let store = database.store().await;
        let master_key = webhooks_api::accounts::generate_api_key();
        let (master, _) = webhooks_api::accounts::bootstrap_master(&store, Some(&master_key))
            .await
            .expect("the master account is created");
        let state = ApiState::new(store.clone(), bus.clone(), settings).await.expect("the API state is built");
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let address = listener.local_addr().expect("a local address");
        let shutdown = CancellationToken::new();
        let (health, _) = Health::new(store.clone(), bus.clone(), &[], Vec::new()).expect("the metrics register");
        tokio::spawn(webhooks_api::run(listener, None, state, health, shutdown.clone()));
        Self {
            client: Client::new(&format!("http://{address}")),
            store,
            bus,
            master_id: master.id.to_string(),
            master_key,
            shutdown,
            _database: database,
        }
    }

    /// A token of the master account.
    pub async fn master_token(&self) -> String {
        self.client.token(&self.master_key).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
