//! Operational endpoints served by every process: `GET /healthz` (the process is alive),
//! `GET /readyz` (its database and bus are reachable and its services have started) and
//! `GET /metrics` (Prometheus text: the services' own metrics, which they register in
//! [`Health::registry`]; the process's database pool, bus connection and queue depths, read at
//! each scrape; `webhooks_build_info`; and the standard `process_*` metrics of CPU, memory and
//! file descriptors, unprefixed as every exporter names them). The API serves them beside its
//! routes, or on an admin address of their own; the router and dispatcher processes serve them
//! alone.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{App, HttpResponse, HttpServer};
use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use webhooks_bus::Bus;
use webhooks_storage::Store;

/// Every metric name starts with `webhooks_`.
const METRIC_PREFIX: &str = "webhooks";

/// How long a readiness probe waits for the database before calling it unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a scrape waits for a queue's depth before leaving it out.
const DEPTH_TIMEOUT: Duration = Duration::from_secs(2);

/// What the readiness probe checks and the metrics endpoint exports. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    store: Store,
    bus: Bus,
    components: Arc<Vec<(&'static str, Arc<AtomicBool>)>>,
    registry: Registry,
    /// The standard `process_*` metrics, which take no prefix.
    process: Registry,
    gauges: ProcessGauges,
    /// The queues this process consumes, whose depth each scrape reports.
    queues: Arc<Vec<String>>,
}

/// Metrics of the process's connections, read at each scrape.
#[derive(Clone)]
struct ProcessGauges {
    pool_connections: IntGauge,
    pool_idle: IntGauge,
    bus_connected: IntGauge,
    bus_reconnections: IntCounter,
    queue_depth: IntGaugeVec,
}

impl ProcessGauges {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let gauges = Self {
            pool_connections: IntGauge::new("db_pool_connections", "Database connections held by the pool.")?,
            pool_idle: IntGauge::new("db_pool_idle_connections", "Idle database connections in the pool.")?,
            bus_connected: IntGauge::new("bus_connected", "1 while the message bus connection is up.")?,
            bus_reconnections: IntCounter::new(
                "bus_reconnections_total",
                "Times the bus connection was re-established.",
            )?,
            queue_depth: IntGaugeVec::new(
                Opts::new("queue_messages", "Messages waiting in a queue this process consumes."),
                &["queue"],
            )?,
        };
        registry.register(Box::new(gauges.pool_connections.clone()))?;
        registry.register(Box::new(gauges.pool_idle.clone()))?;
        registry.register(Box::new(gauges.bus_connected.clone()))?;
        registry.register(Box::new(gauges.bus_reconnections.clone()))?;
        registry.register(Box::new(gauges.queue_depth.clone()))?;
        Ok(gauges)
    }
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
    /// Health over `store` and `bus`, with one start flag per name in `components`, reporting the
    /// depth of `queues` in its metrics.
    pub fn new(
        store: Store,
        bus: Bus,
        components: &[&'static str],
        queues: Vec<String>,
    ) -> prometheus::Result<(Self, Vec<Started>)> {
        let flags: Vec<_> = components.iter().map(|name| (*name, Arc::new(AtomicBool::new(false)))).collect();
        let started = flags.iter().map(|(_, flag)| Started(Arc::clone(flag))).collect();
        let registry = Registry::new_custom(Some(METRIC_PREFIX.to_owned()), None)?;
        let gauges = ProcessGauges::register(&registry)?;
        let build =
            IntGaugeVec::new(Opts::new("build_info", "1, labelled with the running build's version."), &["version"])?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build))?;
        let process = Registry::new();
        // The collector reads /proc, which only Linux has.
        #[cfg(target_os = "linux")]
        process.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        let health =
            Self { store, bus, components: Arc::new(flags), registry, process, gauges, queues: Arc::new(queues) };
        Ok((health, started))
    }

    /// The registry every service of the process registers its metrics in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every metric in Prometheus text format, the connection gauges read now.
    pub async fn render_metrics(&self) -> String {
        let (connections, idle) = self.store.pool_state();
        self.gauges.pool_connections.set(i64::from(connections));
        self.gauges.pool_idle.set(i64::from(idle));
        self.gauges.bus_connected.set(i64::from(self.bus.is_connected()));
        let reconnections = self.bus.reconnections();
        self.gauges.bus_reconnections.inc_by(reconnections.saturating_sub(self.gauges.bus_reconnections.get()));
        for queue in self.queues.iter() {
            if let Ok(Ok(depth)) = tokio::time::timeout(DEPTH_TIMEOUT, self.bus.queue_depth(queue)).await {
                self.gauges.queue_depth.with_label_values(&[queue.as_str()]).set(i64::from(depth));
            }
        }
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        TextEncoder::new().encode_to_string(&families).unwrap_or_else(|error| {
            tracing::error!(error = %error, "metrics not encoded");
            String::new()
        })
    }

    /// Each check by name and whether it passed.
    pub async fn checks(&self) -> Vec<(&'static str, bool)> {
        let database = matches!(tokio::time::timeout(PING_TIMEOUT, self.store.ping()).await, Ok(Ok(())));
        let mut checks = vec![("database", database), ("bus", self.bus.is_connected())];
        checks.extend(self.components.iter().map(|(name, flag)| (*name, flag.load(Ordering::Acquire))));
        checks
    }
}

/// The paths of the operational endpoints.
const PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Whether `path` is an operational endpoint's: probes and scrapes are not the API's traffic.
pub(crate) fn is_operational(path: &str) -> bool {
    PATHS.contains(&path)
}

/// Registers `/healthz`, `/readyz` and `/metrics`; `health` must be in the app data.
pub fn configure(config: &mut ServiceConfig) {
    let [healthz, readyz, scrape] = PATHS;
    config
        .route(healthz, web::get().to(alive))
        .route(readyz, web::get().to(ready))
        .route(scrape, web::get().to(metrics));
}

async fn metrics(health: Data<Health>) -> HttpResponse {
    HttpResponse::Ok().content_type(prometheus::TEXT_FORMAT).body(health.render_metrics().await)
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
