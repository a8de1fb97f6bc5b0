//! The HTTP client of callouts: one shared hyper client with keep-alive, rustls for https, a
//! connect and a total timeout, no redirects (hyper's client never follows them), response bodies
//! read up to a cap, and the SSRF guard (decision 23).
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
use webhooks_model::webhook::is_restricted_address;

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
    /// From the start of the callout to the end of the answer (or the error).
    pub duration: Duration,
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
    /// Per-host limits on callouts in flight, keyed by `scheme://authority`.
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
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

    /// Sends `request` and reads the answer, within the total timeout. Never fails: every error
    /// becomes an [`Answer::ClientError`] with its class.
    ///
    /// The callout first waits for a slot of its host, then for an overall slot, in that order so
    /// that a burst to one slow host waits in its own line without holding overall slots other
    /// hosts need. Waiting is not part of the timeout: a busy dispatcher must not turn its own
    /// queueing into receivers' timeouts (and into auto-disabled hooks).
    pub async fn send(&self, request: &CalloutRequest) -> CalloutResult {
        let target = match target_of(&request.url) {
            Ok(target) => target,
            Err(answer) => return CalloutResult { answer, retry_after: None, duration: Duration::ZERO },
        };
        // Neither semaphore is ever closed, so acquiring only waits.
        let _host_slot = self.host_limit(&target.1).acquire_owned().await.ok();
        let _slot = self.slots.acquire().await.ok();
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.settings.total_timeout, self.exchange(request, target.0)).await;
        let (answer, retry_after) = match outcome {
            Ok(Ok(answered)) => answered,
            Ok(Err(answer)) => (answer, None),
            Err(_) => (Answer::ClientError { class: OutcomeClass::Timeout, text: "timeout".into() }, None),
        };
        CalloutResult { answer, retry_after, duration: started.elapsed() }
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

    /// The in-flight limit of one host.
    fn host_limit(&self, key: &str) -> Arc<Semaphore> {
        // A poisoned lock only means another callout panicked; the map itself is still sound.
        let mut hosts = self.hosts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(limit) = hosts.get(key) {
            return limit.clone();
        }
        // Forget idle hosts now and then so the map does not grow with every URL ever called.
        if hosts.len() >= 10_000 {
            hosts.retain(|_, limit| Arc::strong_count(limit) > 1);
        }
        let limit = Arc::new(Semaphore::new(self.settings.max_connections_per_host.max(1)));
        hosts.insert(key.to_owned(), limit.clone());
        limit
    }
}

/// The parsed URL of a callout and its host key (`scheme://authority`), or why it cannot be
/// called.
fn target_of(url: &str) -> Result<(Uri, String), Answer> {
    let uri = url.parse::<Uri>().map_err(|error| invalid_target(&error.to_string()))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(invalid_target("not an absolute URL"));
    };
    if !matches!(scheme, "http" | "https") {
        return Err(invalid_target("scheme is not http or https"));
    }
    let key = format!("{scheme}://{authority}");
    Ok((uri, key))
}

/// A target that cannot be called at all (never stored by the API; possible in old documents).
fn invalid_target(why: &str) -> Answer {
    Answer::ClientError { class: OutcomeClass::Connect, text: format!("failed_connect: invalid uri: {why}") }
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
