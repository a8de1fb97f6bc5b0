//! Converting the system's queues that exist with other arguments than the configuration
//! declares (classic queues once quorum queues are configured, or the reverse), keeping every
//! message. RabbitMQ cannot change a queue's type in place: a queue is emptied into a stand-in,
//! deleted, declared again and refilled.
//!
//! For each queue `Q` of the topology (and each delay queue):
//! 1. when `Q` is refused as declared: a stand-in `Q.migrating` is declared as `Q` should be,
//!    takes over `Q`'s bindings (so publishers' messages keep arriving, in it), and receives
//!    `Q`'s messages; `Q` is deleted once empty;
//! 2. `Q` is declared as configured and bound;
//! 3. when a stand-in exists (just made, or left by an interrupted run): it gives its bindings
//!    back, its messages go to `Q`, and it is deleted once empty.
//!
//! Each message is acknowledged only once the broker confirmed its copy: an interruption can
//! repeat a message, never lose one. A retry's own expiration starts again where it lands.

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Confirmation, Connection, ConnectionProperties};

use super::declare::{bind, close_quietly, declare_exchange, declare_queue, passive_declare};
use super::message::short_string;
use crate::topology::{BindingSpec, DelayQueue, QueueSpec, Topology};
use crate::{BusError, QueueMigration};

/// Messages taken from a queue before their copies' confirmations are awaited.
const MOVE_BATCH: usize = 500;
/// How often emptying a queue and deleting it is tried before giving up (a queue keeps
/// receiving only while some publisher still reaches it directly).
const DELETE_TRIES: usize = 20;
/// Suffix of a queue's stand-in.
const STAND_IN_SUFFIX: &str = ".migrating";

/// Converts every queue of `topology` and `delay_queues` declared otherwise on the broker at
/// `url` (several addresses separated by commas: the first that answers).
pub(crate) async fn migrate_queues(
    url: &str,
    topology: &Topology,
    delay_queues: &[DelayQueue],
) -> Result<Vec<QueueMigration>, BusError> {
    let connection = connect(url).await?;
    let migrated = migrate_on(&connection, topology, delay_queues).await;
    if let Err(error) = connection.close(super::REPLY_SUCCESS, "queues migrated".into()).await {
        tracing::debug!(%error, "closing the migration's connection failed");
    }
    migrated
}

/// A plain connection to the first address that answers: nothing is declared.
async fn connect(url: &str) -> Result<Connection, BusError> {
    let mut failure = BusError::NoAddress;
    for address in url.split(',').map(str::trim).filter(|address| !address.is_empty()) {
        match Connection::connect(address, ConnectionProperties::default()).await {
            Ok(connection) => return Ok(connection),
            Err(source) => failure = BusError::Connect(source.into()),
        }
    }
    Err(failure)
}

async fn migrate_on(
    connection: &Connection,
    topology: &Topology,
    delay_queues: &[DelayQueue],
) -> Result<Vec<QueueMigration>, BusError> {
    let declarations = topology.declarations();
    let channel = open(connection).await?;
    // Exchanges first: stand-ins are bound to them and dead-letter into them.
    for exchange in &declarations.exchanges {
        declare_exchange(&channel, exchange).await?;
    }
    close_quietly(&channel).await;
    let queues =
        declarations.queues.iter().cloned().chain(delay_queues.iter().map(|delay| topology.delay_queue(delay)));
    let mut migrated = Vec::new();
    for spec in queues {
        let bindings: Vec<BindingSpec> =
            declarations.bindings.iter().filter(|binding| binding.queue == spec.name).cloned().collect();
        if let Some(migration) = migrate_queue(connection, &spec, &bindings).await? {
            tracing::info!(queue = %migration.queue, messages = migration.messages, "queue converted");
            migrated.push(migration);
        }
    }
    Ok(migrated)
}

/// Steps 1 to 3 of the module's description for one queue; `None` when it needed none.
async fn migrate_queue(
    connection: &Connection,
    spec: &QueueSpec,
    bindings: &[BindingSpec],
) -> Result<Option<QueueMigration>, BusError> {
    let stand_in = QueueSpec { name: format!("{}{STAND_IN_SUFFIX}", spec.name), ..spec.clone() };
    let stand_in_bindings: Vec<BindingSpec> =
        bindings.iter().map(|binding| BindingSpec { queue: stand_in.name.clone(), ..binding.clone() }).collect();

    // A refused declaration closes its channel: each try gets its own.
    let channel = open(connection).await?;
    let converted = match declare_queue(&channel, spec).await {
        Ok(()) => false,
        Err(BusError::QueueMismatch { .. }) => true,
        Err(error) => return Err(error),
    };
    close_quietly(&channel).await;
    if converted {
        let consumers = look_up(connection, &spec.name).await?.map_or(0, |found| found.consumer_count());
        if consumers > 0 {
            return Err(BusError::QueueInUse { queue: spec.name.clone(), why: format!("{consumers} consumers") });
        }
        let channel = open(connection).await?;
        declare_queue(&channel, &stand_in).await?;
        for binding in &stand_in_bindings {
            bind(&channel, binding).await?;
        }
        for binding in bindings {
            unbind(&channel, binding).await?;
        }
        close_quietly(&channel).await;
        empty_and_delete(connection, &spec.name, &stand_in.name).await?;
        let channel = open(connection).await?;
        declare_queue(&channel, spec).await?;
        for binding in bindings {
            bind(&channel, binding).await?;
        }
        close_quietly(&channel).await;
    }
    if look_up(connection, &stand_in.name).await?.is_none() {
        return Ok(None);
    }
    let channel = open(connection).await?;
    for binding in &stand_in_bindings {
        unbind(&channel, binding).await?;
    }
    close_quietly(&channel).await;
    let messages = empty_and_delete(connection, &stand_in.name, &spec.name).await?;
    Ok(Some(QueueMigration { queue: spec.name.clone(), messages }))
}

/// Moves every message of `from` to `to`, then deletes `from` once it is empty; the messages
/// moved. Unbound, `from` receives nothing more unless a service still publishes to it
/// directly. (Quorum queues support neither `if_empty` nor `if_unused` deletion.)
async fn empty_and_delete(connection: &Connection, from: &str, to: &str) -> Result<u64, BusError> {
    let mut moved = 0;
    for _ in 0..DELETE_TRIES {
        moved += move_messages(connection, from, to).await?;
        if look_up(connection, from).await?.is_some_and(|found| found.message_count() > 0) {
            continue;
        }
        let channel = open(connection).await?;
        let deleted = channel
            .queue_delete(short_string(from, "queue name")?, QueueDeleteOptions::default())
            .await
            .map_err(|source| BusError::Broker { operation: "delete a converted queue", source: source.into() })?;
        close_quietly(&channel).await;
        if deleted > 0 {
            return Err(BusError::QueueInUse {
                queue: from.to_owned(),
                why: format!("{deleted} messages reached it as it was deleted, and went with it"),
            });
        }
        return Ok(moved);
    }
    Err(BusError::QueueInUse { queue: from.to_owned(), why: "messages keep arriving in it".to_owned() })
}

/// Copies the messages of `from` to `to` through the default exchange, acknowledging each batch
/// once the broker confirmed its copies.
async fn move_messages(connection: &Connection, from: &str, to: &str) -> Result<u64, BusError> {
    let moving =
        |source: lapin::Error| BusError::Broker { operation: "move a queue's messages", source: source.into() };
    let (from_name, to_name) = (short_string(from, "queue name")?, short_string(to, "queue name")?);
    let channel = open(connection).await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(moving)?;
    let mut moved = 0;
    loop {
        let mut confirms = Vec::with_capacity(MOVE_BATCH);
        let mut last_tag = None;
        while confirms.len() < MOVE_BATCH {
            let Some(message) =
                channel.basic_get(from_name.clone(), BasicGetOptions { no_ack: false }).await.map_err(moving)?
            else {
                break;
            };
            let delivery = message.delivery;
            // Mandatory: a copy with no queue to take it comes back rather than vanishing.
            let options = BasicPublishOptions { mandatory: true, immediate: false };
            let confirm = channel
                .basic_publish("".into(), to_name.clone(), options, &delivery.data, delivery.properties.clone())
                .await
                .map_err(moving)?;
            confirms.push(confirm);
            last_tag = Some(delivery.delivery_tag);
        }
        let Some(last_tag) = last_tag else { break };
        for confirm in confirms.drain(..) {
            if !matches!(confirm.await.map_err(moving)?, Confirmation::Ack(None)) {
                return Err(BusError::Unconfirmed { exchange: String::new(), routing_key: to.to_owned() });
            }
            moved += 1;
        }
        channel.basic_ack(last_tag, BasicAckOptions { multiple: true }).await.map_err(moving)?;
    }
    close_quietly(&channel).await;
    Ok(moved)
}

/// `queue` as the broker has it, or `None` when it does not exist.
async fn look_up(connection: &Connection, queue: &str) -> Result<Option<lapin::Queue>, BusError> {
    passive_declare(open(connection).await?, queue, "look a queue up").await
}

/// `queue.unbind` of a binding.
async fn unbind(channel: &Channel, binding: &BindingSpec) -> Result<(), BusError> {
    channel
        .queue_unbind(
            short_string(&binding.queue, "queue name")?,
            short_string(&binding.exchange, "exchange name")?,
            short_string(&binding.routing_key, "routing key")?,
            FieldTable::default(),
        )
        .await
        .map_err(|source| BusError::Broker { operation: "unbind a queue being converted", source: source.into() })
}

/// A fresh channel.
async fn open(connection: &Connection) -> Result<Channel, BusError> {
    connection
        .create_channel()
        .await
        .map_err(|source| BusError::Broker { operation: "open a channel", source: source.into() })
}
