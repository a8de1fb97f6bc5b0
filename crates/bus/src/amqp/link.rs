//! The connection and its supervision: a supervisor task watches it and, when it drops,
//! reconnects with backoff and declares everything again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties, Event};

use super::declare::{bind, close_quietly, declare_all, declare_queue};
use super::{MAX_BACKOFF, MIN_BACKOFF, REPLY_SUCCESS, Shared, lock};
use crate::BusError;

/// How long one connection attempt (TCP, handshake, declarations) may take: an unreachable host
/// can otherwise hold a connect for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the supervisor looks at the connection even without an event (lapin does not
/// report every way a connection can end as an event).
const STATUS_POLL: Duration = Duration::from_secs(1);
/// The pause before trying again a reconnection refused for a queue of other arguments.
const MISMATCH_PAUSE: Duration = Duration::from_secs(10);

/// One live connection.
pub(super) struct Link {
    /// The connection.
    pub(super) connection: Connection,
    /// The confirm-mode channel for publishing, re-opened if the broker closed it (a channel
    /// error such as publishing to a missing exchange closes only the channel).
    publisher: tokio::sync::Mutex<Option<Channel>>,
}

impl Link {
    /// Whether the connection is open.
    pub(super) fn alive(&self) -> bool {
        self.connection.status().connected()
    }

    /// The publishing channel, opened (in confirm mode) if needed.
    pub(super) async fn publisher(&self) -> Result<Channel, lapin::Error> {
        let mut slot = self.publisher.lock().await;
        if let Some(channel) = slot.as_ref().filter(|channel| channel.status().connected()) {
            return Ok(channel.clone());
        }
        let channel = self.connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }
}

/// Watches the connection and replaces it when it drops, until shutdown.
pub(super) async fn supervise(shared: Arc<Shared>) {
    loop {
        if shared.shutdown.is_cancelled() {
            return;
        }
        if let Some(link) = shared.current() {
            watch_until_lost(&shared, &link).await;
            if shared.shutdown.is_cancelled() {
                // Whoever takes the link closes it: `close` may have taken it already, and two
                // closes racing on one connection can wait forever for the broker's close-ok.
                if let Some(link) = shared.link.send_replace(None) {
                    close_connection(&link).await;
                }
                return;
            }
            tracing::warn!(bus.prefix = %shared.topology.prefix, "connection to the message broker lost; reconnecting");
            shared.link.send_replace(None);
            // Another node of a cluster first: the one just lost is likely down, and is tried
            // again last.
            let count = shared.urls.len();
            let lost = shared.first_url.load(Ordering::Relaxed);
            shared.first_url.store((lost + 1) % count, Ordering::Relaxed);
        }
        if !reconnect(&shared).await {
            return;
        }
    }
}

/// Returns once `link` is no longer connected, or at shutdown.
async fn watch_until_lost(shared: &Shared, link: &Link) {
    let mut events = link.connection.events_listener();
    let mut events_open = true;
    while link.alive() {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = shared.wake.notified() => {}
            event = events.next(), if events_open => match event {
                Some(Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(reason = %reason, "the message broker blocks publishing");
                }
                Some(Event::ConnectionUnblocked) => tracing::info!("the message broker accepts publishing again"),
                // Any other event is a reason to look at the connection.
                Some(_) => {}
                // An ended stream leaves the polling.
                None => events_open = false,
            },
            () = tokio::time::sleep(STATUS_POLL) => {}
        }
    }
}

/// Reconnects with exponential backoff; false at shutdown.
async fn reconnect(shared: &Arc<Shared>) -> bool {
    let mut pause = MIN_BACKOFF;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let established = tokio::select! {
            () = shared.shutdown.cancelled() => return false,
            established = establish_in_time(shared) => established,
        };
        match established {
            Ok(link) => {
                shared.link.send_replace(Some(Arc::new(link)));
                shared.reconnections.fetch_add(1, Ordering::Relaxed);
                tracing::info!(bus.prefix = %shared.topology.prefix, attempt, "reconnected to the message broker");
                return true;
            }
            Err(error @ BusError::QueueMismatch { .. }) => {
                // A queue replaced under a running service: only an operator can settle it, so
                // it is said loudly, and tried again seldom.
                tracing::error!(bus.prefix = %shared.topology.prefix, attempt, error = %error, "cannot reconnect to the message broker");
                pause = MISMATCH_PAUSE;
            }
            Err(error) => {
                tracing::warn!(
                    bus.prefix = %shared.topology.prefix,
                    attempt,
                    retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    error = %error,
                    "cannot reconnect to the message broker",
                );
            }
        }
        tokio::select! {
            () = shared.shutdown.cancelled() => return false,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_BACKOFF);
    }
}

/// [`establish`] at each of the broker's addresses in turn, from the first to try, each attempt
/// bounded by [`CONNECT_TIMEOUT`]: the first that answers is kept, and tried first from then on.
pub(super) async fn establish_in_time(shared: &Shared) -> Result<Link, BusError> {
    let count = shared.urls.len();
    let first = shared.first_url.load(Ordering::Relaxed);
    let mut failure = BusError::NoAddress;
    for index in (first..first + count).map(|index| index % count) {
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, establish(shared, &shared.urls[index])).await;
        match attempt.unwrap_or(Err(BusError::Timeout { operation: "connect to the message broker" })) {
            Ok(link) => {
                shared.first_url.store(index, Ordering::Relaxed);
                return Ok(link);
            }
            // The same queue on every node of a cluster: no other address can help.
            Err(error @ BusError::QueueMismatch { .. }) => return Err(error),
            Err(error) => {
                if count > 1 {
                    // The index, not the URL: the URL carries the password.
                    tracing::warn!(address = index + 1, of = count, error = %error, "broker address not answering");
                }
                failure = error;
            }
        }
    }
    Err(failure)
}

/// Opens a connection to `url` and declares everything on it: the topology, then what was
/// declared since connecting (delay and private queues).
async fn establish(shared: &Shared, url: &str) -> Result<Link, BusError> {
    let properties = ConnectionProperties::default().with_connection_name(shared.connection_name.as_str().into());
    let connection = Connection::connect(url, properties).await.map_err(|source| BusError::Connect(source.into()))?;
    let channel = connection.create_channel().await.map_err(|source| BusError::Connect(source.into()))?;
    declare_all(&channel, &shared.topology.declarations()).await?;
    let (delay_queues, private_queues) = {
        let registry = lock(&shared.registry);
        (
            registry.delay_queues.values().cloned().collect::<Vec<_>>(),
            registry.private_queues.values().cloned().collect::<Vec<_>>(),
        )
    };
    for spec in &delay_queues {
        declare_queue(&channel, spec).await?;
    }
    for (spec, bindings) in &private_queues {
        declare_queue(&channel, spec).await?;
        for binding in bindings {
            bind(&channel, binding).await?;
        }
    }
    close_quietly(&channel).await;
    let link = Link { connection, publisher: tokio::sync::Mutex::new(None) };
    // Opened now so the first publish does not pay for it, and a broker refusing confirm mode
    // fails the connection rather than every publish.
    link.publisher().await.map_err(|source| BusError::Connect(source.into()))?;
    Ok(link)
}

/// Closes a connection politely, waiting a bounded time for the broker's answer so a process
/// never hangs on exit.
pub(super) async fn close_connection(link: &Link) {
    if !link.alive() {
        return;
    }
    match tokio::time::timeout(CLOSE_TIMEOUT, link.connection.close(REPLY_SUCCESS, "bus closed".into())).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(error = %error, "closing the broker connection failed"),
        Err(_) => tracing::debug!("the broker did not answer the close in time"),
    }
}

/// How long closing the connection may wait for the broker.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
