//! A fake webhook receiver on 127.0.0.1, port 0: records every request byte for byte and answers
//! as the test's script says (a status, headers and body, or never).

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
use tokio::net::TcpListener;
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
    /// Everything received (nothing for a [`Receiver::counting`] one).
    requests: Arc<Mutex<Vec<Captured>>>,
    /// How many requests arrived.
    received: Arc<AtomicUsize>,
    /// How many connections were accepted.
    connections: Arc<AtomicUsize>,
    /// Woken on every request.
    arrived: Arc<Notify>,
    /// Stops the server.
    stop: CancellationToken,
}

/// What answers one request; it counts and records as its receiver does.
type Handler = dyn Fn(Request<Incoming>) -> BoxFuture<'static, Response<Full<Bytes>>> + Send + Sync;

impl Receiver {
    /// Starts a receiver answering with `script`.
    pub async fn start(script: impl Fn(&Captured, usize) -> Reply + Send + Sync + 'static) -> Receiver {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (received, arrived, stop) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()), CancellationToken::new());
        let script: Arc<Script> = Arc::new(script);
        let counts = Arc::new(Mutex::new(std::collections::HashMap::<String, usize>::new()));
        let handler = {
            let (requests, received, arrived, stop) =
                (requests.clone(), received.clone(), arrived.clone(), stop.clone());
            move |request: Request<Incoming>| {
                let (requests, received, arrived, stop, script, counts) =
                    (requests.clone(), received.clone(), arrived.clone(), stop.clone(), script.clone(), counts.clone());
                async move {
                    let captured = capture(request).await;
                    let seen = {
                        let mut counts = counts.lock().expect("counts");
                        let count = counts.entry(captured.path().to_owned()).or_insert(0);
                        *count += 1;
                        *count - 1
                    };
                    let reply = script(&captured, seen);
                    requests.lock().expect("requests").push(captured);
                    received.fetch_add(1, Ordering::Relaxed);
                    arrived.notify_waiters();
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
        Self::serve(Arc::new(handler), requests, received, arrived, stop).await
    }

    /// A receiver for benchmarks: reads each request whole and answers `status`, keeping only
    /// the count, so its own work weighs as little as possible beside what is measured.
    /// [`Receiver::requests`] stays empty.
    pub async fn counting(status: u16) -> Receiver {
        let status = hyper::StatusCode::from_u16(status).expect("a valid status");
        let (received, arrived, stop) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()), CancellationToken::new());
        let handler = {
            let (received, arrived) = (received.clone(), arrived.clone());
            move |request: Request<Incoming>| {
                let (received, arrived) = (received.clone(), arrived.clone());
                async move {
                    let _ = request.into_body().collect().await;
                    received.fetch_add(1, Ordering::Relaxed);
                    arrived.notify_waiters();
                    let mut response = Response::new(Full::new(Bytes::new()));
                    *response.status_mut() = status;
                    response
                }
                .boxed()
            }
        };
        Self::serve(Arc::new(handler), Arc::default(), received, arrived, stop).await
    }

    /// Listens on a fresh port and answers every request of every connection with `handler`
    /// until `stop` is cancelled.
    async fn serve(
        handler: Arc<Handler>,
        requests: Arc<Mutex<Vec<Captured>>>,
        received: Arc<AtomicUsize>,
        arrived: Arc<Notify>,
        stop: CancellationToken,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let address = listener.local_addr().expect("receiver address");
        let task_stop = stop.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted_count = connections.clone();
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
                let (handler, connection_stop) = (handler.clone(), task_stop.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| handler(request).map(Ok::<_, Infallible>));
                    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        () = connection_stop.cancelled() => {}
                    }
                });
            }
        });
        Receiver { address, requests, received, connections, arrived, stop }
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
        self.received.load(Ordering::Relaxed)
    }

    /// How many connections were made to it so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.requests.lock().expect("requests").clone()
    }

    /// Waits (at most `limit`) until `count` requests have arrived; returns them all.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Captured> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.arrived.notified();
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
