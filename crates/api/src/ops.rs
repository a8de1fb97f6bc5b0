//! Operational endpoints served by every process: `GET /healthz` (the process is alive) and
//! `GET /readyz` (its database and bus are reachable and its services have started). The API
//! serves them beside its routes; the router and dispatcher processes serve them alone.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{App, HttpResponse, HttpServer};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use webhooks_bus::Bus;
use webhooks_storage::Store;

/// How long a readiness probe waits for the database before calling it unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What the readiness probe checks. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    store: Store,
    bus: Bus,
    components: Arc<Vec<(&'static str, Arc<AtomicBool>)>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("components", &self.components).finish_non_exhaustive()
    }
}

/// Marks one component of a process as started; until then the process is not ready.
#[derive(Debug, Clone)]
pub struct Started(Arc<AtomicBool>);

impl Started {
    /// The component is up (for the router: its index is loaded and its queues consumed).
    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Health {
    /// Health over `store` and `bus`, with one start flag per name in `components`.
    pub fn new(store: Store, bus: Bus, components: &[&'static str]) -> (Self, Vec<Started>) {
        let flags: Vec<_> = components.iter().map(|name| (*name, Arc::new(AtomicBool::new(false)))).collect();
        let started = flags.iter().map(|(_, flag)| Started(Arc::clone(flag))).collect();
        (Self { store, bus, components: Arc::new(flags) }, started)
    }

    /// Each check by name and whether it passed.
    pub async fn checks(&self) -> Vec<(&'static str, bool)> {
        let database = matches!(tokio::time::timeout(PING_TIMEOUT, self.store.ping()).await, Ok(Ok(())));
        let mut checks = vec![("database", database), ("bus", self.bus.is_connected())];
        checks.extend(self.components.iter().map(|(name, flag)| (*name, flag.load(Ordering::Acquire))));
        checks
    }
}

/// Registers `/healthz` and `/readyz`; `health` must be in the app data.
pub fn configure(config: &mut ServiceConfig) {
    config.route("/healthz", web::get().to(alive)).route("/readyz", web::get().to(ready));
}

async fn alive() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn ready(health: Data<Health>) -> HttpResponse {
    let checks = health.checks().await;
    let all = checks.iter().all(|(_, passed)| *passed);
    let detail: Map<String, Value> = checks
        .into_iter()
        .map(|(name, passed)| (name.to_owned(), json!(if passed { "ok" } else { "failing" })))
        .collect();
    let body = json!({"status": if all { "ok" } else { "failing" }, "checks": detail});
    if all { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

/// Serves only the operational endpoints on `listener` until `shutdown` is cancelled (the
/// router and dispatcher processes).
pub async fn run(listener: TcpListener, health: Health, shutdown: CancellationToken) -> std::io::Result<()> {
    let health = Data::new(health);
    let server = HttpServer::new(move || App::new().app_data(health.clone()).configure(configure))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)?
        .run();
    serve_until(server, shutdown).await
}

/// Runs `server` until `shutdown` is cancelled, then lets it drain its in-flight requests.
pub(crate) async fn serve_until(server: Server, shutdown: CancellationToken) -> std::io::Result<()> {
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop(true).await;
    });
    server.await
}
