//! The Crossbar-compatible REST API: webhooks, their attempts and samples, the hook definitions,
//! and the accounts and authentication they depend on.
//!
//! The binary hands [`run`] a bound listener, an [`ApiState`] and a shutdown token; tests drive
//! [`app`] in-process.

pub mod accounts;
pub mod auth;
pub mod crossbar;
pub mod query;
mod routes;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::web::Data;
use actix_web::{App, HttpServer};
use tokio_util::sync::CancellationToken;
use webhooks_model::hooks::HookDefinitions;
use webhooks_model::ids::AccountId;
use webhooks_storage::{Account, StorageError, Store};

use crate::auth::TokenSigner;

/// Settings of the API service.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// This server's name in the envelope's `node`.
    pub node: String,
    /// Accept hook URIs naming loopback or private addresses (tests, private deployments).
    pub allow_private_targets: bool,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long an auth token stays valid.
    pub token_lifetime_seconds: u64,
    /// Page length when the client names none (Crossbar's default is 50).
    pub default_page_size: usize,
    /// HTTP worker threads.
    pub workers: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            node: "webhooks".into(),
            allow_private_targets: false,
            max_body_bytes: 1 << 20,
            token_lifetime_seconds: 3600,
            default_page_size: 50,
            workers: 2,
        }
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct ApiState {
    store: Store,
    tokens: TokenSigner,
    definitions: HookDefinitions,
    settings: ApiSettings,
    node: Arc<str>,
}

/// The settings key of the token signing secret, shared by every replica through the store.
const TOKEN_SECRET_SETTING: &str = "auth_token_secret";

impl ApiState {
    /// Builds the state, creating the shared token secret on first start.
    pub async fn new(store: Store, settings: ApiSettings) -> Result<Self, StorageError> {
        let candidate = hex::encode(rand::random::<[u8; 32]>());
        let secret = store.insert_setting_if_absent(TOKEN_SECRET_SETTING, &candidate).await?;
        Ok(Self {
            tokens: TokenSigner::new(secret.as_bytes(), settings.token_lifetime_seconds),
            definitions: HookDefinitions::default(),
            node: Arc::from(settings.node.as_str()),
            settings,
            store,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The token signer.
    pub fn tokens(&self) -> &TokenSigner {
        &self.tokens
    }

    pub(crate) fn node(&self) -> Arc<str> {
        Arc::clone(&self.node)
    }

    pub(crate) async fn account(&self, id: &AccountId) -> Result<Option<Account>, StorageError> {
        self.store.account(id).await
    }
}

/// The application: Crossbar middleware around every route.
pub fn app(
    state: Data<ApiState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new().app_data(state).configure(routes::configure).wrap(actix_web::middleware::from_fn(crossbar::middleware))
}

/// Serves the API on `listener` until `shutdown` is cancelled, then drains in-flight requests.
pub async fn run(listener: TcpListener, state: ApiState, shutdown: CancellationToken) -> std::io::Result<()> {
    let workers = state.settings.workers.max(1);
    let state = Data::new(state);
    let server = HttpServer::new(move || app(state.clone()))
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop(true).await;
    });
    server.await
}
