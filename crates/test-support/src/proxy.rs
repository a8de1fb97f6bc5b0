//! A TCP proxy on 127.0.0.1, port 0, in front of a real server (the machine's PostgreSQL or
//! RabbitMQ): a service pointed at it loses its database or broker when the test cuts the proxy,
//! while the server itself, shared with every other test, keeps running.
//!
//! Cut, the proxy resets every connection it carries, at both ends (the client sees a reset, and
//! the server sees its client go, so a broker requeues what that client held unacknowledged),
//! and resets every new connection as soon as it is accepted, so a connect fails at once as it
//! does against a host with nothing listening. Restored, it forwards new connections again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A running proxy; stops, resetting what it carries, when dropped.
pub struct Proxy {
    /// Where it listens.
    address: SocketAddr,
    /// Shared with the accepting task.
    shared: Arc<Shared>,
    /// Stops the accepting task.
    stop: CancellationToken,
}

/// What the accepting task and the test share.
struct Shared {
    /// Whether the proxy is cut, and the token of the connections carried now.
    state: Mutex<State>,
    /// Connections forwarded to the target so far.
    forwarded: AtomicUsize,
}

struct State {
    cut: bool,
    /// Cancelled to reset every connection carried now; replaced by a fresh one at each cut.
    carried: CancellationToken,
}

impl Proxy {
    /// Starts a proxy forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let address = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State { cut: false, carried: CancellationToken::new() }),
            forwarded: AtomicUsize::new(0),
        });
        let stop = CancellationToken::new();
        let (task_shared, task_stop) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    () = task_stop.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => continue,
                    },
                };
                let carried = {
                    let state = task_shared.state.lock().expect("proxy state");
                    (!state.cut).then(|| state.carried.clone())
                };
                match carried {
                    Some(carried) => {
                        tokio::spawn(forward(client, target, carried, task_shared.clone()));
                    }
                    None => reset(client),
                }
            }
        });
        Proxy { address, shared, stop }
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Resets every connection carried now, and every new one until [`Proxy::restore`].
    pub fn cut(&self) {
        let mut state = self.shared.state.lock().expect("proxy state");
        state.cut = true;
        state.carried.cancel();
        state.carried = CancellationToken::new();
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.shared.state.lock().expect("proxy state").cut = false;
    }

    /// How many connections it has forwarded to the target so far.
    pub fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::Relaxed)
    }
}

/// `url` (of a database or a broker) with `server` (`host:port`) replaced by `proxy`.
pub fn via(url: &str, server: &str, proxy: SocketAddr) -> String {
    assert!(url.contains(server), "{url} does not name {server}, which the proxy forwards to");
    url.replacen(server, &proxy.to_string(), 1)
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

/// Carries `client` to `target` until either end closes or `carried` is cancelled, which resets
/// both ends.
async fn forward(mut client: TcpStream, target: SocketAddr, carried: CancellationToken, shared: Arc<Shared>) {
    let mut server = match TcpStream::connect(target).await {
        Ok(server) => server,
        Err(_) => return reset(client),
    };
    shared.forwarded.fetch_add(1, Ordering::Relaxed);
    // Small messages (AMQP frames, PostgreSQL queries) pass on at once.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        () = carried.cancelled() => {
            reset(client);
            reset(server);
        }
    }
}

/// Closes `stream` with a reset (RST) rather than an orderly close.
fn reset(stream: TcpStream) {
    // Without a zero linger the close would be an orderly FIN; failing that, it still closes.
    let _ = stream.set_zero_linger();
    drop(stream);
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An echo server on a free port.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut reader, mut writer) = stream.split();
                    let _ = tokio::io::copy(&mut reader, &mut writer).await;
                });
            }
        });
        address
    }

    /// Writes `byte` and reads one byte back; `None` when the connection fails or ends.
    async fn round_trip(stream: &mut TcpStream, byte: u8) -> Option<u8> {
        stream.write_all(&[byte]).await.ok()?;
        let mut answer = [0u8; 1];
        match stream.read(&mut answer).await {
            Ok(1) => Some(answer[0]),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_cut_resets_carried_and_new_connections_until_restored() {
        let proxy = Proxy::start(echo().await).await;
        let mut carried = TcpStream::connect(proxy.address()).await.expect("connect");
        assert_eq!(round_trip(&mut carried, b'a').await, Some(b'a'), "forwarded");
        assert_eq!(proxy.forwarded(), 1);

        proxy.cut();
        let mut answer = [0u8; 1];
        let read = carried.read(&mut answer).await;
        assert!(
            read.as_ref().is_err_and(|error| error.kind() == std::io::ErrorKind::ConnectionReset),
            "the carried connection is reset: {read:?}"
        );
        let mut refused = TcpStream::connect(proxy.address()).await.expect("accepted, then reset");
        assert_eq!(round_trip(&mut refused, b'b').await, None, "a new connection goes nowhere");
        assert_eq!(proxy.forwarded(), 1, "nothing reached the target while cut");

        proxy.restore();
        let mut fresh = TcpStream::connect(proxy.address()).await.expect("connect");
        assert_eq!(round_trip(&mut fresh, b'c').await, Some(b'c'), "forwarded again");
        assert_eq!(proxy.forwarded(), 2);
    }
}
