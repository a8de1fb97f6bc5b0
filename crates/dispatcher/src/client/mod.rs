//! The HTTP client of callouts: one shared hyper client with keep-alive, rustls for https, a
//! connect and a total timeout, no redirects (hyper's client never follows them), response bodies
//! read up to a cap, per-host limits and pace (`host`), and the SSRF guard (`guard`,
//! docs/kazoo.md#target-checks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Semaphore;
use webhooks_model::attempt::{Answer, OutcomeClass};
use webhooks_model::webhook::CallbackUri;

use crate::request::CalloutRequest;
use crate::retry_after::parse_retry_after;

mod classify;
mod guard;
mod host;

pub use guard::BlockedTarget;

use classify::classify;
use guard::{BoxError, GuardedConnector, GuardedResolver};
use host::{Ended, Host};

/// What a callout produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CalloutResult {
    /// The answer or the client error.
    pub answer: Answer,
    /// The server's `Retry-After`, parsed.
    pub retry_after: Option<Duration>,
    /// From the start of the callout (waiting for its host included) to the end of the answer
    /// (or the error).
    pub duration: Duration,
    /// No slot of the host freed up within the timeout, so nothing was sent: the dispatcher's
    /// own queueing, not a failure of the receiver.
    pub host_saturated: bool,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS for callouts")]
pub struct ClientSetupError(#[source] rustls::Error);

/// The settings the client needs.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Whole-callout timeout.
    pub total_timeout: Duration,
    /// Callouts in flight at once, all hosts together.
    pub concurrency: usize,
    /// Callouts in flight per host.
    pub max_connections_per_host: usize,
    /// A host is slow once its callouts have taken this long for this long (or one timed out),
    /// or its callouts in flight have gone this long without one ending.
    pub slow_after: Duration,
    /// Idle keep-alive lifetime.
    pub pool_idle_timeout: Duration,
    /// Response body bytes kept.
    pub max_response_body: usize,
    /// Whether restricted addresses may be reached.
    pub allow_private_targets: bool,
}

/// The shared callout client; cheap to clone.
#[derive(Clone)]
pub struct CalloutClient {
    /// hyper's pooled client.
    client: Client<HttpsConnector<GuardedConnector>, Full<Bytes>>,
    /// The hosts called, keyed by origin (`scheme://authority`).
    hosts: Arc<Mutex<HashMap<String, Arc<Host>>>>,
    /// The overall limit on callouts in flight.
    slots: Arc<Semaphore>,
    /// The settings.
    settings: Arc<ClientSettings>,
}

impl CalloutClient {
    /// A client with these settings.
    pub fn new(settings: ClientSettings) -> Result<Self, ClientSetupError> {
        let mut http =
            HttpConnector::new_with_resolver(GuardedResolver { allow_private_targets: settings.allow_private_targets });
        // https URLs reach this connector too; TLS is layered on top by hyper-rustls.
        http.enforce_http(false);
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(30)));
        let guarded = GuardedConnector { inner: http, allow_private_targets: settings.allow_private_targets };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(ClientSetupError)?
            .https_or_http()
            .enable_http1()
            .wrap_connector(guarded);
        let client = Client::builder(TokioExecutor::new())
            // `X-Hook-Id` rather than `x-hook-id` on the wire: closer to Kazoo's `X-Hook-ID` for
            // receivers that (wrongly) compare header names by case. hyper cannot send an
            // arbitrary case for requests it originates.
            .http1_title_case_headers(true)
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_max_idle_per_host(settings.max_connections_per_host)
            .build(https);
        let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        Ok(Self { client, hosts: Arc::default(), slots, settings: Arc::new(settings) })
    }

    /// Whether the host of `uri` is slow: its callouts have taken `slow_after` or more for
    /// `slow_after` with none quicker (or the last one timed out), or its callouts in flight have
    /// gone `slow_after` without one ending.
    ///
    /// One slow answer is not enough: when this process stalls (a burst of large batches to
    /// parse on two cores), every callout in flight ends late at the same instant, and a busy but
    /// healthy host must not be sent to the slow lane for it.
    pub fn host_is_slow(&self, uri: &CallbackUri) -> bool {
        let Ok(callout) = uri.callout() else { return false };
        let host = self.hosts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(callout.origin()).cloned();
        host.is_some_and(|host| host.is_slow(self.settings.slow_after))
    }

    /// Sends `request` and reads the answer, within the total timeout. Never fails: every error
    /// becomes an [`Answer::ClientError`] with its class.
    ///
    /// The callout first waits for a slot of its host, then for an overall slot, in that order so
    /// that a burst to one slow host waits in its own line without holding overall slots other
    /// hosts need. Waiting for a slow host counts within the timeout, so a dead host cannot hold
    /// a job longer than the timeout: a job that gets none of its slots within half of it fails
    /// as `host saturated` (the exchange keeps the other half, rather than sending doomed
    /// requests). Waiting for a quick host, or for an overall slot, does not count: a busy
    /// dispatcher must not turn its own queueing into receivers' timeouts (and into auto-disabled
    /// hooks).
    pub async fn send(&self, request: &CalloutRequest) -> CalloutResult {
        let target = match &request.target {
            Ok(target) => target,
            Err(why) => {
                // Never stored by the API; possible in old documents.
                let answer =
                    Answer::ClientError { class: OutcomeClass::Connect, text: format!("failed_connect: {why}") };
                return CalloutResult { answer, retry_after: None, duration: Duration::ZERO, host_saturated: false };
            }
        };
        let host = self.host(target.origin());
        let timeout = self.settings.total_timeout;
        let waiting = Instant::now();
        let mut acquiring = std::pin::pin!(host.slots.clone().acquire_owned());
        // The semaphore is never closed, so acquiring only waits.
        let _host_slot = match tokio::time::timeout(timeout / 2, &mut acquiring).await {
            Ok(slot) => slot.ok(),
            Err(_) if host.is_slow(self.settings.slow_after) => {
                let answer = Answer::ClientError { class: OutcomeClass::Timeout, text: "host saturated".into() };
                return CalloutResult { answer, retry_after: None, duration: waiting.elapsed(), host_saturated: true };
            }
            Err(_) => acquiring.await.ok(),
        };
        let waited = waiting.elapsed();
        let _slot = self.slots.acquire().await.ok();
        let in_flight = host.start();
        let started = Instant::now();
        let budget = timeout.saturating_sub(waited).max(timeout / 2);
        let outcome = tokio::time::timeout(budget, self.exchange(request, target.uri().clone())).await;
        let took = started.elapsed();
        in_flight.finish(match outcome {
            Ok(_) if took < self.settings.slow_after => Ended::Quick,
            Ok(_) => Ended::Slow,
            Err(_) => Ended::TimedOut,
        });
        let (answer, retry_after) = match outcome {
            Ok(Ok(answered)) => answered,
            Ok(Err(answer)) => (answer, None),
            Err(_) => (Answer::ClientError { class: OutcomeClass::Timeout, text: "timeout".into() }, None),
        };
        CalloutResult { answer, retry_after, duration: waited + took, host_saturated: false }
    }

    /// The exchange proper: request, then the capped body.
    async fn exchange(&self, request: &CalloutRequest, uri: Uri) -> Result<(Answer, Option<Duration>), Answer> {
        let mut builder = http::Request::builder().method(request.method.clone()).uri(uri);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let http_request = builder.body(Full::new(request.body.clone())).map_err(|error| Answer::ClientError {
            class: OutcomeClass::Io,
            text: format!("invalid request: {error}"),
        })?;
        let response = self.client.request(http_request).await.map_err(|error| classify(&error))?;
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        let body = read_capped(response.into_body(), self.settings.max_response_body)
            .await
            .map_err(|error| classify(error.as_ref()))?;
        let body = String::from_utf8_lossy(&body).into_owned();
        Ok((Answer::Response { status, headers, body }, retry_after))
    }

    /// The state of one host.
    fn host(&self, key: &str) -> Arc<Host> {
        // A poisoned lock only means another callout panicked; the map itself is still sound.
        let mut hosts = self.hosts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(host) = hosts.get(key) {
            return host.clone();
        }
        // Forget idle hosts now and then so the map does not grow with every URL ever called.
        if hosts.len() >= 10_000 {
            hosts.retain(|_, host| Arc::strong_count(host) > 1);
        }
        let host = Arc::new(Host::new(self.settings.max_connections_per_host.max(1)));
        hosts.insert(key.to_owned(), host.clone());
        host
    }
}

/// Reads at most `cap` bytes of `body`; the rest is not read (the connection is then not reused).
async fn read_capped(mut body: hyper::body::Incoming, cap: usize) -> Result<Vec<u8>, BoxError> {
    let mut collected = Vec::new();
    while collected.len() < cap {
        let Some(frame) = body.frame().await else { break };
        if let Ok(data) = frame?.into_data() {
            let room = cap - collected.len();
            collected.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(collected)
}
