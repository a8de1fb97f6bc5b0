//! The process's logs and, when `otel_endpoint` is set, the export of its spans to an
//! OpenTelemetry collector (OTLP over HTTP, protobuf). Without an endpoint nothing of
//! OpenTelemetry is installed: logs are set up exactly as they always were.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::TracerProvider;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::runtime::Handle;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};
use webhooks_model::config::LogFormat;

/// How long one export may take; also the bound of the final flush at exit.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// The collector's answers are tiny; a larger one is refused rather than read.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Where spans go, and as which service.
pub struct Export<'a> {
    /// The collector's base URL; spans are posted to `<endpoint>/v1/traces`.
    pub endpoint: &'a str,
    /// `api`, `router`, `dispatcher` or `serve`: the resource's service.name is `webhooks-<service>`.
    pub service: &'a str,
    /// The runtime the exporter's requests run on.
    pub runtime: Handle,
}

/// The installed span exporter, flushed by [`SpanExport::shutdown`].
pub struct SpanExport {
    /// Batches spans on a thread of its own and exports them.
    provider: SdkTracerProvider,
}

impl SpanExport {
    /// Exports the spans still buffered, waiting at most [`EXPORT_TIMEOUT`]. Call it while the
    /// runtime given in [`Export`] still runs, from outside it (it blocks).
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown_with_timeout(EXPORT_TIMEOUT) {
            tracing::warn!(error = %error, "the last spans were not all exported");
        }
    }
}

/// Installs the logs (standard error, filtered by `RUST_LOG`) and, with `export`, the span
/// exporter; the exporter is returned, to be shut down at exit.
pub fn install(format: LogFormat, export: Option<Export<'_>>) -> anyhow::Result<Option<SpanExport>> {
    let Some(export) = export else {
        let builder = tracing_subscriber::fmt().with_env_filter(log_filter()).with_writer(std::io::stderr);
        match format {
            LogFormat::Json => builder.json().init(),
            LogFormat::Text => builder.init(),
        }
        return Ok(None);
    };
    let provider = tracer_provider(&export)?;
    // Each output has its own filter: spans are exported whatever RUST_LOG lets through to the logs.
    let logs = fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Json => logs.json().boxed(),
        LogFormat::Text => logs.boxed(),
    };
    let spans =
        tracing_opentelemetry::layer().with_tracer(provider.tracer("webhooks")).with_filter(filter_fn(exported));
    tracing_subscriber::registry().with(logs.with_filter(log_filter())).with(spans).init();
    Ok(Some(SpanExport { provider }))
}

/// `RUST_LOG`, else info (actix's server chatter at warn).
fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"))
}

/// What is exported: spans and events (as span events) at info and above, and the router's
/// per-event span, which is at debug so that it costs nothing while nothing is exported. The
/// exporter's own logs stay out, so that exporting never feeds itself.
fn exported(metadata: &Metadata<'_>) -> bool {
    !metadata.target().starts_with("opentelemetry")
        && (*metadata.level() <= Level::INFO || metadata.name() == webhooks_router::EVENT_SPAN)
}

/// Batches spans and posts them to the collector, as `webhooks-<service>`.
fn tracer_provider(export: &Export<'_>) -> anyhow::Result<SdkTracerProvider> {
    let base = export.endpoint.trim_end_matches('/');
    anyhow::ensure!(
        base.starts_with("http://") || base.starts_with("https://"),
        "otel_endpoint must be an http:// or https:// URL, not {base:?}"
    );
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OtlpClient::new(export.runtime.clone())?)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{base}/v1/traces"))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .context("invalid otel_endpoint")?;
    let resource = Resource::builder().with_service_name(format!("webhooks-{}", export.service)).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// The exporter's HTTP client: hyper (as the dispatcher's), its requests run on the service's
/// runtime, because the SDK's batch processor exports from a thread of its own, outside any runtime.
#[derive(Debug)]
struct OtlpClient {
    /// Where requests run.
    runtime: Handle,
    /// Pooled, http and https (Mozilla's roots).
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl OtlpClient {
    fn new(runtime: Handle) -> anyhow::Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .context("setting up TLS for the span exporter")?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self { runtime, client: Client::builder(TokioExecutor::new()).build(https) })
    }
}

#[async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let exchange = async move {
            let (parts, body) = client.request(request.map(Full::new)).await?.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        // The timer is made inside the task: only there is a runtime at hand.
        match self.runtime.spawn(async move { tokio::time::timeout(EXPORT_TIMEOUT, exchange).await }).await? {
            Ok(answered) => answered,
            Err(elapsed) => Err(elapsed.into()),
        }
    }
}
