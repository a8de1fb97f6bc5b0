//! Request metrics of the API: requests by route, method and status, and their latency by route
//! and method. Routes are labelled by their pattern (`/v2/accounts/{account_id}/webhooks`), never
//! by account, hook or URI, so the label set stays small.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Data;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// The API's metrics, registered once per process.
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl ApiMetrics {
    /// Creates the metrics in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new("api_requests_total", "API requests answered, by route, method and status."),
            &["route", "method", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("api_request_duration_seconds", "Time to answer an API request, by route and method.")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["route", "method"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self { requests, duration })
    }
}

/// Counts and times every request, errors included.
pub(crate) async fn record(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    // Probes and scrapes would otherwise outnumber the clients' requests on a quiet API.
    let metrics =
        request.app_data::<Data<ApiMetrics>>().cloned().filter(|_| !crate::ops::is_operational(request.path()));
    let response = next.call(request).await?;
    if let Some(metrics) = metrics {
        let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        let method = response.request().method().as_str().to_owned();
        let status = response.status().as_u16().to_string();
        metrics.requests.with_label_values(&[route.as_str(), method.as_str(), status.as_str()]).inc();
        metrics.duration.with_label_values(&[route.as_str(), method.as_str()]).observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}
