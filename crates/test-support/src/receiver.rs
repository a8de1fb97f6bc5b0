//! A fake webhook receiver on 127.0.0.1, port 0: records every request byte for byte and answers
//! as the test's script says (a status, headers and body, or never); or, for fault tests,
//! misbehaves below HTTP (resets the connection, or streams a body that never ends).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Captured {
    /// `GET`, `POST`, `PUT`.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers in the order received.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Captured {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The value of query parameter `name`, as sent (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<String> {
        let (_, query) = self.target.split_once('?')?;
        query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
    }
}

/// How to answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status, these headers, this body.
    Answer(u16, Vec<(String, String)>, String),
    /// Never answer (until the receiver is dropped).
    Hang,
}

impl Reply {
    /// A bare status.
    pub fn status(status: u16) -> Self {
        Self::Answer(status, Vec::new(), String::new())
    }
}

/// The script: request, and how many requests came before it (on the same path), to reply.
type Script = dyn Fn(&Captured, usize) -> Reply + Send + Sync;

/// A running receiver; stops when dropped.
pub struct Receiver {
    /// Where it listens.
    address: SocketAddr,
    /// What it received.
    log: Log,
    /// Stops the server.
    stop: CancellationToken,
}

/// What a receiver keeps of what it received; shared with the tasks serving its connections.
#[derive(Clone, Default)]
struct Log {
    /// Everything received (nothing for a [`Receiver::counting`] or [`Receiver::observing`] one).
    requests: Arc<Mutex<Vec<Captured>>>,
    /// How many requests arrived.
    received: Arc<AtomicUsize>,
    /// How many connections were accepted.
    connections: Arc<AtomicUsize>,
    /// Woken on every request.
    arrived: Arc<Notify>,
}

impl Log {
    /// Counts a request and wakes whoever waits for one.
    fn counted(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.arrived.notify_waiters();
    }

    /// Keeps a request and counts it.
    fn keep(&self, captured: Captured) {
        self.requests.lock().expect("requests").push(captured);
        self.counted();
    }
}

/// What answers one request; it counts and records as its receiver does.
type Handler = dyn Fn(Request<Incoming>) -> BoxFuture<'static, Response<Full<Bytes>>> + Send + Sync;

/// What serves one accepted connection, until it ends.
type Connection = dyn Fn(TcpStream) -> BoxFuture<'static, ()> + Send + Sync;

/// Bytes of a request head a misbehaving receiver reads at most.
const MAX_HEAD: usize = 64 * 1024;

/// One chunk of an endless body.
const ENDLESS_CHUNK: usize = 16 * 1024;

impl Receiver {
    /// Starts a receiver answering with `script`.
    pub async fn start(script: impl Fn(&Captured, usize) -> Reply + Send + Sync + 'static) -> Receiver {
        let (log, stop) = (Log::default(), CancellationToken::new());
        let script: Arc<Script> = Arc::new(script);
        let counts = Arc::new(Mutex::new(std::collections::HashMap::<String, usize>::new()));
        let handler = {
            let (log, stop) = (log.clone(), stop.clone());
            move |request: Request<Incoming>| {
                let (log, stop, script, counts) = (log.clone(), stop.clone(), script.clone(), counts.clone());
                async move {
                    let captured = capture(request).await;
                    let seen = {
                        let mut counts = counts.lock().expect("counts");
                        let count = counts.entry(captured.path().to_owned()).or_insert(0);
                        *count += 1;
                        *count - 1
                    };
                    let reply = script(&captured, seen);
                    log.keep(captured);
                    match reply {
                        Reply::Answer(status, headers, body) => {
                            let mut response = Response::builder().status(status);
                            for (name, value) in headers {
                                response = response.header(name, value);
                            }
                            response.body(Full::new(Bytes::from(body))).expect("response")
                        }
                        Reply::Hang => {
                            stop.cancelled().await;
                            Response::new(Full::new(Bytes::new()))
                        }
                    }
                }
                .boxed()
            }
        };
        Self::serve(over_http(Arc::new(handler)), log, stop).await
    }

    /// A receiver for benchmarks: reads each request whole and answers `status`, keeping only
    /// the count, so its own work weighs as little as possible beside what is measured.
    /// [`Receiver::requests`] stays empty.
    pub async fn counting(status: u16) -> Receiver {
        let status = hyper::StatusCode::from_u16(status).expect("a valid status");
        let (log, stop) = (Log::default(), CancellationToken::new());
        let handler = {
            let log = log.clone();
            move |request: Request<Incoming>| {
                let log = log.clone();
                async move {
                    let _ = request.into_body().collect().await;
                    log.counted();
                    let mut response = Response::new(Full::new(Bytes::new()));
                    *response.status_mut() = status;
                    response
                }
                .boxed()
            }
        };
        Self::serve(over_http(Arc::new(handler)), log, stop).await
    }

    /// A receiver for long runs: answers `status` and hands each request to `observe` instead
    /// of keeping it, so its memory does not grow with what it receives.
    /// [`Receiver::requests`] stays empty.
    pub async fn observing(status: u16, observe: impl Fn(&Captured) + Send + Sync + 'static) -> Receiver {
        let status = hyper::StatusCode::from_u16(status).expect("a valid status");
        let (log, stop) = (Log::default(), CancellationToken::new());
        let observe = Arc::new(observe);
        let handler = {
            let log = log.clone();
            move |request: Request<Incoming>| {
                let (log, observe) = (log.clone(), observe.clone());
                async move {
                    observe(&capture(request).await);
                    log.counted();
                    let mut response = Response::new(Full::new(Bytes::new()));
                    *response.status_mut() = status;
                    response
                }
                .boxed()
            }
        };
        Self::serve(over_http(Arc::new(handler)), log, stop).await
    }

    /// A receiver that reads each request, records it, and resets the connection (TCP RST)
    /// instead of answering.
    pub async fn resetting() -> Receiver {
        Self::misbehaving(|stream| {
            // Without a zero linger the close would be an orderly FIN; failing that, it closes.
            let _ = stream.set_zero_linger();
            async {}.boxed()
        })
        .await
    }

    /// A receiver that reads each request, records it, and answers 200 with a chunked body that
    /// never ends: it writes until the client goes away.
    pub async fn streaming_endlessly() -> Receiver {
        Self::misbehaving(|mut stream| {
            async move {
                let head =
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                let mut chunk = format!("{ENDLESS_CHUNK:x}\r\n").into_bytes();
                chunk.extend(std::iter::repeat_n(b'x', ENDLESS_CHUNK));
                chunk.extend_from_slice(b"\r\n");
                if stream.write_all(head).await.is_err() {
                    return;
                }
                while stream.write_all(&chunk).await.is_ok() {}
            }
            .boxed()
        })
        .await
    }

    /// A receiver that reads one request per connection, records it, and then hands the
    /// connection to `misbehave`.
    async fn misbehaving(misbehave: fn(TcpStream) -> BoxFuture<'static, ()>) -> Receiver {
        let (log, stop) = (Log::default(), CancellationToken::new());
        let connection = {
            let log = log.clone();
            move |mut stream: TcpStream| {
                let log = log.clone();
                async move {
                    if let Some(captured) = read_request(&mut stream).await {
                        log.keep(captured);
                        misbehave(stream).await;
                    }
                }
                .boxed()
            }
        };
        Self::serve(Arc::new(connection), log, stop).await
    }

    /// Listens on a fresh port and serves every connection with `connection` until `stop` is
    /// cancelled.
    async fn serve(connection: Arc<Connection>, log: Log, stop: CancellationToken) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let address = listener.local_addr().expect("receiver address");
        let task_stop = stop.clone();
        let accepted_count = Arc::clone(&log.connections);
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = task_stop.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                accepted_count.fetch_add(1, Ordering::Relaxed);
                let (served, connection_stop) = (connection(stream), task_stop.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = served => {}
                        () = connection_stop.cancelled() => {}
                    }
                });
            }
        });
        Receiver { address, log, stop }
    }

    /// Always answers `status`.
    pub async fn answering(status: u16) -> Receiver {
        Self::start(move |_, _| Reply::status(status)).await
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.log.received.load(Ordering::Relaxed)
    }

    /// How many connections were made to it so far.
    pub fn connections(&self) -> usize {
        self.log.connections.load(Ordering::Relaxed)
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.log.requests.lock().expect("requests").clone()
    }

    /// Waits (at most `limit`) until `count` requests have arrived; returns them all.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Captured> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.log.arrived.notified();
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("{count} requests expected within {limit:?}, {} arrived", self.requests().len());
            }
        }
    }
}

/// Serves each connection as HTTP/1, answering every request with `handler`.
fn over_http(handler: Arc<Handler>) -> Arc<Connection> {
    Arc::new(move |stream: TcpStream| {
        let handler = handler.clone();
        async move {
            let service = service_fn(move |request| handler(request).map(Ok::<_, Infallible>));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        }
        .boxed()
    })
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Reads a whole request.
async fn capture(request: Request<Incoming>) -> Captured {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|collected| collected.to_bytes().to_vec()).unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let target = parts.uri.path_and_query().map(ToString::to_string).unwrap_or_default();
    Captured { method: parts.method.to_string(), target, headers, body, at }
}

/// Reads one HTTP/1 request off `stream` by hand (its head, then a `Content-Length` body), for
/// the receivers that then misbehave at the socket level; `None` when the client goes first or
/// sends no request.
async fn read_request(stream: &mut TcpStream) -> Option<Captured> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > MAX_HEAD {
            return None;
        }
        let read = stream.read(&mut chunk).await.ok().filter(|&read| read > 0)?;
        buffer.extend_from_slice(&chunk[..read]);
    };
    let at = Instant::now();
    let head = std::str::from_utf8(&buffer[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, target) = (request_line.next()?.to_owned(), request_line.next()?.to_owned());
    // Lower-cased, as hyper gives them to the other receivers.
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await.ok().filter(|&read| read > 0)?;
        body.extend_from_slice(&chunk[..read]);
    }
    body.truncate(length);
    Some(Captured { method, target, headers, body, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_resetting_receiver_records_the_request_and_resets() {
        let receiver = Receiver::resetting().await;
        let sent = reqwest::Client::new().post(receiver.url("/reset")).body("{\"a\":1}").send().await;
        assert!(sent.is_err(), "no answer but a reset: {sent:?}");
        let requests = receiver.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!((requests[0].method.as_str(), requests[0].path()), ("POST", "/reset"));
        assert_eq!(requests[0].body, b"{\"a\":1}");
    }

    #[tokio::test]
    async fn the_streaming_receiver_answers_200_with_a_body_that_goes_on() {
        let receiver = Receiver::streaming_endlessly().await;
        let mut answer = reqwest::get(receiver.url("/stream")).await.expect("an answer");
        assert_eq!(answer.status(), 200);
        let mut read = 0;
        while read <= 4 * 1024 * 1024 {
            read += answer.chunk().await.expect("readable").expect("the body goes on").len();
        }
        assert_eq!(receiver.count(), 1);
    }
}
