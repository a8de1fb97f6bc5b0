//! The Crossbar-compatible REST API: webhooks, their attempts and samples, the hook definitions,
//! and the accounts and authentication they depend on.
//!
//! The binary hands [`run`] a bound listener, an [`ApiState`] and a shutdown token; tests drive
//! [`app`] in-process. The writes, re-enables, redeliveries and change notices behind the handlers
//! are [`operations`], which the binary's operator commands call too.

pub mod accounts;
pub mod auth;
pub mod crossbar;
pub mod kazoo;
mod listing;
pub mod metrics;
pub mod operations;
pub mod ops;
pub mod query;
mod routes;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::web::Data;
use actix_web::{App, HttpServer};
use tokio_util::sync::CancellationToken;
use webhooks_bus::Bus;
use webhooks_model::config::{ApiConfig, KazooConfig};
use webhooks_model::hooks::HookDefinitions;
use webhooks_model::ids::AccountId;
use webhooks_model::notice::Change;
use webhooks_storage::couch::CouchDb;
use webhooks_storage::{Account, StorageError, Store};

use crate::auth::TokenSigner;
use crate::kazoo::{AccountSync, CouchMirror, KazooSetupError, KazooTokens};
use crate::listing::HookLists;
use crate::metrics::ApiMetrics;
use crate::operations::{Announcer, Committed};
use crate::ops::Health;

/// Settings of the API service.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The `[api]` section.
    pub api: ApiConfig,
    /// This server's name in the envelope's `node`.
    pub node: String,
    /// Accept hook URIs naming loopback or private addresses (tests, private deployments).
    pub allow_private_targets: bool,
    /// The `cluster_id` payloads carry (test callouts send one too).
    pub cluster_id: String,
    /// The `[kazoo]` section: Kazoo mode when its `crossbar_url` is set.
    pub kazoo: KazooConfig,
}

/// Why the API cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    /// The shared token secret could not be read or created.
    #[error("reading the token secret: {0}")]
    Storage(#[from] StorageError),
    /// Kazoo mode is misconfigured.
    #[error(transparent)]
    Kazoo(#[from] KazooSetupError),
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct ApiState {
    store: Store,
    bus: Bus,
    announcer: Announcer,
    tokens: TokenSigner,
    /// Kazoo mode's token verification; `None` in standalone mode.
    kazoo: Option<KazooTokens>,
    /// Kazoo mode's copy of Kazoo's accounts; `None` in standalone mode.
    account_sync: Option<Arc<AccountSync>>,
    definitions: HookDefinitions,
    settings: ApiSettings,
    node: Arc<str>,
    accounts: moka::sync::Cache<AccountId, Arc<Account>>,
    hook_lists: Arc<HookLists>,
}

/// The settings key of the token signing secret, shared by every replica through the store.
const TOKEN_SECRET_SETTING: &str = "auth_token_secret";

impl ApiState {
    /// Builds the state, creating the shared token secret on first start, and in Kazoo mode
    /// reading Kazoo's signing keys. Changes are announced and ingested events published on
    /// `bus`.
    pub async fn new(store: Store, bus: Bus, settings: ApiSettings) -> Result<Self, ApiStartError> {
        let candidate = hex::encode(rand::random::<[u8; 32]>());
        let secret = store.insert_setting_if_absent(TOKEN_SECRET_SETTING, &candidate).await?;
        let node = Arc::from(settings.node.as_str());
        let announcer = Announcer::new(bus.clone(), Arc::clone(&node));
        let kazoo = KazooTokens::start(&settings.kazoo).await?;
        let account_sync = match &kazoo {
            Some(kazoo) if settings.kazoo.api_key.is_some() => Some(Arc::new(AccountSync::new(
                store.clone(),
                Arc::clone(kazoo.crossbar()),
                announcer.clone(),
                settings.kazoo.master_account_id.clone(),
            ))),
            Some(_) => {
                tracing::warn!(
                    "kazoo.api_key is not set: Kazoo's accounts cannot be read, so only accounts already stored are known"
                );
                None
            }
            None => None,
        };
        Ok(Self {
            tokens: TokenSigner::new(secret.as_bytes(), settings.api.token_lifetime_seconds),
            kazoo,
            account_sync,
            definitions: HookDefinitions::default(),
            announcer,
            node,
            hook_lists: Arc::new(HookLists::new(Duration::from_secs(settings.api.listing_cache_seconds))),
            accounts: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(settings.api.account_cache_seconds))
                .build(),
            settings,
            store,
            bus,
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

    /// Kazoo mode's token verification (and its Crossbar client); `None` in standalone mode.
    pub fn kazoo(&self) -> Option<&KazooTokens> {
        self.kazoo.as_ref()
    }

    pub(crate) fn node(&self) -> Arc<str> {
        Arc::clone(&self.node)
    }

    /// Kazoo mode's copy of Kazoo's accounts; `None` in standalone mode.
    pub fn account_sync(&self) -> Option<&Arc<AccountSync>> {
        self.account_sync.as_ref()
    }

    /// True in Kazoo mode, where accounts are Kazoo's.
    pub(crate) fn accounts_are_kazoos(&self) -> bool {
        self.kazoo.is_some()
    }

    /// An account, from the cache when it was read recently. Missing accounts are not cached.
    /// In Kazoo mode an account not copied yet is read from Crossbar, so that one Kazoo has just
    /// created is known before its notice arrives; only for a request with a verified token, so
    /// that anonymous requests naming made-up accounts cost Crossbar nothing.
    pub(crate) async fn account(&self, id: &AccountId) -> Result<Option<Arc<Account>>, StorageError> {
        let verified = crossbar::current().is_some_and(|request| request.caller.is_some());
        self.account_for(id, verified).await
    }

    /// [`ApiState::account`], for a request whose token is `verified` (or not) already: the
    /// account a token names with `as` is read while the token is being turned into its caller.
    pub(crate) async fn account_for(
        &self,
        id: &AccountId,
        verified: bool,
    ) -> Result<Option<Arc<Account>>, StorageError> {
        if let Some(account) = self.accounts.get(id) {
            return Ok(Some(account));
        }
        let on_demand = self.account_sync.as_ref().filter(|_| verified);
        let stored = match (self.store.account(id).await?, on_demand) {
            (None, Some(sync)) => sync.refresh(id).await.unwrap_or_else(|error| {
                tracing::warn!(account.id = %id, %error, "an account unknown here cannot be read from Crossbar");
                None
            }),
            (stored, _) => stored,
        };
        let Some(account) = stored else { return Ok(None) };
        let account = Arc::new(account);
        self.accounts.insert(id.clone(), Arc::clone(&account));
        Ok(Some(account))
    }

    /// Tells every router about a committed write, and returns what the write returned. This
    /// replica's own caches forget what the change concerns first, so its next answer already
    /// shows it; the notice goes out alongside the answer ([`Committed::announce_later`]).
    pub(crate) fn announce<T>(&self, committed: Committed<T>) -> T {
        let change = committed.change();
        self.hook_lists.forget(change);
        if let Change::Account { id, .. } = change {
            self.accounts.invalidate(id);
        }
        committed.announce_later(&self.announcer)
    }
}

/// The application: Crossbar middleware around every route.
pub fn app(
    state: Data<ApiState>,
    health: Data<Health>,
    metrics: Data<ApiMetrics>,
    with_ops: bool,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .app_data(health)
        .app_data(metrics)
        .configure(|config| {
            if with_ops {
                ops::configure(config);
            }
        })
        .configure(routes::configure)
        .wrap(actix_web::middleware::from_fn(crossbar::middleware))
        .wrap(actix_web::middleware::from_fn(metrics::record))
}

/// Serves the API on `listener`, and the operational endpoints on `admin` when given (else
/// beside the API), until `shutdown` is cancelled, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    admin: Option<TcpListener>,
    state: ApiState,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let workers = state.settings.api.workers.max(1);
    let following = Arc::clone(&state.hook_lists).follow(state.bus.clone(), shutdown.clone()).await;
    tokio::spawn(following.map_err(std::io::Error::other)?);
    if let Some(sync) = state.account_sync.clone() {
        let interval = Duration::from_secs(state.settings.kazoo.accounts_reconcile_seconds);
        let (bus, shutdown) = (state.bus.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(error) = sync.follow(bus, interval, shutdown).await {
                tracing::error!(%error, "Kazoo's account notices cannot be followed; accounts are reconciled no more");
            }
        });
    }
    if let Some(url) = &state.settings.kazoo.couch_url {
        let couch = CouchDb::new(url).map_err(std::io::Error::other)?;
        let mirror = CouchMirror::new(state.store.clone(), couch);
        let (bus, shutdown) = (state.bus.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(error) = mirror.follow(bus, shutdown).await {
                tracing::error!(%error, "hook writes cannot be mirrored into CouchDB any more");
            }
        });
    }
    let state = Data::new(state);
    let metrics = Data::new(ApiMetrics::register(health.registry()).map_err(std::io::Error::other)?);
    let with_ops = admin.is_none();
    let ops = admin.map(|admin| tokio::spawn(ops::run(admin, health.clone(), shutdown.clone())));
    let health = Data::new(health);
    let server = HttpServer::new(move || app(state.clone(), health.clone(), metrics.clone(), with_ops))
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
    let served = ops::serve_until(server, shutdown).await;
    match ops {
        Some(ops) => served.and(ops.await.map_err(std::io::Error::other)?),
        None => served,
    }
}
