//! The HTTP client of callouts: one shared hyper client with keep-alive, rustls for https, a
//! connect and a total timeout, no redirects (hyper's client never follows them), response bodies
//! read up to a cap, and the SSRF guard (docs/kazoo.md#target-checks).
//!
//! The guard sits where addresses are chosen: the resolver drops restricted addresses from what a
//! name resolves to (and refuses the name when nothing is left), so the connector only ever
//! connects to checked addresses; literal addresses in the URL, which skip resolution, are
//! checked before connecting. Re-resolution (DNS rebinding) cannot slip past it because every
//! new connection goes through the same resolver.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tower_service::Service;
use webhooks_model::attempt::{Answer, OutcomeClass};
use webhooks_model::webhook::{CallbackUri, is_restricted_address};

use crate::request::CalloutRequest;
use crate::retry_after::parse_retry_after;

/// Errors boxed the way hyper's connectors pass them.
type BoxError = Box<dyn StdError + Send + Sync>;

/// A target refused by the SSRF guard.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {address}, which is not a public address")]
pub struct BlockedTarget {
    /// The host of the URL.
    host: String,
    /// The (first) refused address.
    address: IpAddr,
}

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
enum ResolveError {
    /// The lookup failed (unknown name, resolver unreachable).
    #[error("nxdomain: {host}")]
    Lookup {
        /// The name.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The name has no addresses.
    #[error("nxdomain: {0} has no address")]
    NoAddress(String),
}

/// Resolves with the system resolver, then drops restricted addresses unless private targets are
/// allowed.
#[derive(Clone)]
struct GuardedResolver {
    /// Whether restricted addresses are allowed.
    allow_private_targets: bool,
}

impl Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private_targets = self.allow_private_targets;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // Port 0: the connector sets the URL's port on each address.
            let looked_up = tokio::net::lookup_host((host.as_str(), 0)).await.map(Iterator::collect::<Vec<_>>);
            let addresses: Vec<SocketAddr> = match looked_up {
                Ok(addresses) => addresses,
                Err(source) => return Err(ResolveError::Lookup { host, source }.into()),
            };
            if addresses.is_empty() {
                return Err(ResolveError::NoAddress(host).into());
            }
            if allow_private_targets {
                return Ok(addresses.into_iter());
            }
            let (public, restricted): (Vec<_>, Vec<_>) =
                addresses.into_iter().partition(|address| !is_restricted_address(address.ip()));
            match (public.is_empty(), restricted.first()) {
                (true, Some(refused)) => Err(BlockedTarget { host, address: refused.ip() }.into()),
                _ => Ok(public.into_iter()),
            }
        })
    }
}

/// The TCP connector of callouts: hyper's, resolving through [`GuardedResolver`], with literal
/// addresses checked first.
#[derive(Clone)]
struct GuardedConnector {
    /// hyper's connector (timeouts, happy eyeballs, `TCP_NODELAY`).
    inner: HttpConnector<GuardedResolver>,
    /// Whether restricted addresses are allowed.
    allow_private_targets: bool,
}

impl Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if !self.allow_private_targets
            && let Some(host) = uri.host()
            && let Ok(address) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>()
            && is_restricted_address(address)
        {
            let blocked = BlockedTarget { host: host.to_owned(), address };
            return Box::pin(std::future::ready(Err(blocked.into())));
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

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

/// One host: its limit on callouts in flight, and how quickly it has been answering.
struct Host {
    /// Slots of callouts in flight.
    slots: Arc<Semaphore>,
    /// How its callouts have been going.
    pace: Mutex<Pace>,
}

/// How a host's callouts have been going.
struct Pace {
    /// Callouts in flight.
    in_flight: usize,
    /// When one last ended, or when callouts started after none were in flight.
    progress_at: Instant,
    /// How the last ones ended.
    lately: Lately,
}

/// How a host's last callouts ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lately {
    /// The last one was quick (or none ended yet).
    Quick,
    /// Every one since this instant took too long.
    Slow(Instant),
    /// The last one timed out.
    TimedOut,
}

/// How one callout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// In less than `slow_after`.
    Quick,
    /// Answered (or failed), but in `slow_after` or more.
    Slow,
    /// Not within the timeout.
    TimedOut,
}

impl Host {
    /// A host allowing `slots` callouts in flight.
    fn new(slots: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            pace: Mutex::new(Pace { in_flight: 0, progress_at: Instant::now(), lately: Lately::Quick }),
        }
    }

    /// The pace, even if a callout panicked while holding it (it is only counters).
    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// See [`CalloutClient::host_is_slow`].
    fn is_slow(&self, slow_after: Duration) -> bool {
        let pace = self.pace();
        let lately_slow = match pace.lately {
            Lately::Quick => false,
            Lately::Slow(since) => since.elapsed() >= slow_after,
            Lately::TimedOut => true,
        };
        lately_slow || (pace.in_flight > 0 && pace.progress_at.elapsed() >= slow_after)
    }

    /// Counts a callout in flight until the guard is finished or dropped.
    fn start(&self) -> InFlight<'_> {
        let mut pace = self.pace();
        if pace.in_flight == 0 {
            pace.progress_at = Instant::now();
        }
        pace.in_flight += 1;
        InFlight { host: self }
    }
}

/// A callout in flight to a host.
struct InFlight<'a> {
    /// Its host.
    host: &'a Host,
}

impl InFlight<'_> {
    /// The callout ended as `ended` says.
    fn finish(self, ended: Ended) {
        let mut pace = self.host.pace();
        let now = Instant::now();
        pace.lately = match (ended, pace.lately) {
            (Ended::Quick, _) => Lately::Quick,
            (Ended::Slow, Lately::Slow(since)) => Lately::Slow(since),
            (Ended::Slow, _) => Lately::Slow(now),
            (Ended::TimedOut, _) => Lately::TimedOut,
        };
        if ended != Ended::TimedOut {
            pace.progress_at = now;
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut pace = self.host.pace();
        pace.in_flight = pace.in_flight.saturating_sub(1);
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

/// The class and `client_error` text of a failed exchange, from the error's cause chain.
fn classify(error: &(dyn StdError + 'static)) -> Answer {
    let (class, text) = classify_chain(error);
    Answer::ClientError { class, text }
}

/// Walks the cause chain, looking inside `io::Error`s too (their `source` skips the error they
/// wrap, and TLS errors come wrapped twice).
fn classify_chain(error: &(dyn StdError + 'static)) -> (OutcomeClass, String) {
    let mut connect_phase = false;
    let mut io_kind = None;
    let mut decided = None;
    visit_causes(error, &mut |cause| {
        if let Some(legacy) = cause.downcast_ref::<hyper_util::client::legacy::Error>() {
            connect_phase |= legacy.is_connect();
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() != std::io::ErrorKind::Other
        {
            io_kind.get_or_insert(io.kind());
        }
        decided = classify_one(cause);
        decided.is_some()
    });
    if let Some(found) = decided {
        return found;
    }
    let detail = innermost(error);
    match (connect_phase, io_kind) {
        (_, Some(std::io::ErrorKind::TimedOut)) => (OutcomeClass::Timeout, "failed_connect: timeout".into()),
        (true, Some(std::io::ErrorKind::ConnectionRefused)) => {
            (OutcomeClass::Connect, "failed_connect: econnrefused".into())
        }
        (true, _) => (OutcomeClass::Connect, format!("failed_connect: {detail}")),
        (false, _) => (OutcomeClass::Io, format!("closed: {detail}")),
    }
}

/// Calls `found` on `error` and each of its causes, outermost first, descending into the errors
/// `io::Error`s wrap; stops as soon as `found` returns true.
fn visit_causes<'a>(
    error: &'a (dyn StdError + 'static),
    found: &mut dyn FnMut(&'a (dyn StdError + 'static)) -> bool,
) -> bool {
    if found(error) {
        return true;
    }
    if let Some(io) = error.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
    {
        let inner: &'a (dyn StdError + 'static) = inner;
        return visit_causes(inner, found);
    }
    match error.source() {
        Some(source) => visit_causes(source, found),
        None => false,
    }
}

/// The class of one error of the chain, when it decides it.
fn classify_one(error: &(dyn StdError + 'static)) -> Option<(OutcomeClass, String)> {
    if let Some(blocked) = error.downcast_ref::<BlockedTarget>() {
        return Some((OutcomeClass::BlockedTarget, format!("blocked_target: {blocked}")));
    }
    if let Some(resolve) = error.downcast_ref::<ResolveError>() {
        return Some((OutcomeClass::Dns, format!("failed_connect: {resolve}")));
    }
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some((OutcomeClass::Tls, format!("tls: {tls}")));
    }
    None
}

/// The text of the deepest error of the chain: the most specific one.
fn innermost(error: &(dyn StdError + 'static)) -> String {
    let mut deepest = error;
    visit_causes(error, &mut |cause| {
        deepest = cause;
        false
    });
    deepest.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOW_AFTER: Duration = Duration::from_millis(40);

    fn ended(host: &Host, how: Ended) {
        host.start().finish(how);
    }

    #[test]
    fn a_host_is_slow_once_its_answers_stay_slow_or_one_times_out_and_quick_again_at_once() {
        let host = Host::new(4);
        // A cohort ending late at one instant (this process stalled) is not enough...
        for _ in 0..3 {
            ended(&host, Ended::Slow);
        }
        assert!(!host.is_slow(SLOW_AFTER));
        // ...slow answers lasting `slow_after` are.
        std::thread::sleep(SLOW_AFTER);
        ended(&host, Ended::Slow);
        assert!(host.is_slow(SLOW_AFTER));
        ended(&host, Ended::Quick);
        assert!(!host.is_slow(SLOW_AFTER));
        ended(&host, Ended::TimedOut);
        assert!(host.is_slow(SLOW_AFTER));
        ended(&host, Ended::Quick);
        assert!(!host.is_slow(SLOW_AFTER));
    }

    #[test]
    fn callouts_in_flight_without_any_ending_make_a_host_slow_and_a_late_answer_is_progress() {
        let host = Host::new(4);
        let hanging = host.start();
        assert!(!host.is_slow(SLOW_AFTER));
        std::thread::sleep(SLOW_AFTER);
        assert!(host.is_slow(SLOW_AFTER), "nothing ended while one was in flight");
        ended(&host, Ended::Slow);
        assert!(!host.is_slow(SLOW_AFTER), "a late answer is an answer");
        drop(hanging);
    }

    #[test]
    fn guard_errors_are_classified_through_the_chain() {
        let blocked: BoxError = BlockedTarget { host: "internal".into(), address: [10, 0, 0, 1].into() }.into();
        let wrapped = std::io::Error::other(blocked);
        let (class, text) = classify_chain(&wrapped);
        assert_eq!(class, OutcomeClass::BlockedTarget);
        assert_eq!(text, "blocked_target: internal resolves to 10.0.0.1, which is not a public address");
    }

    #[test]
    fn dns_and_tls_errors_get_their_classes() {
        let dns = ResolveError::NoAddress("nowhere.invalid".into());
        assert_eq!(classify_chain(&dns).0, OutcomeClass::Dns);
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(classify_chain(&tls).0, OutcomeClass::Tls);
        // hyper-rustls wraps tokio-rustls's error once more.
        let twice =
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError));
        assert_eq!(classify_chain(&twice).0, OutcomeClass::Tls);
    }

    #[test]
    fn timeouts_and_other_io_errors_are_told_apart() {
        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert_eq!(classify_chain(&timed_out).0, OutcomeClass::Timeout);
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(classify_chain(&reset), (OutcomeClass::Io, "closed: reset".into()));
    }
}
