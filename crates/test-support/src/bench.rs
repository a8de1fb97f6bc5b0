//! The local RabbitMQ's one-hop ceiling and the plain AMQP client the benchmarks measure with: a
//! publisher with confirms and a consumer with multiple acknowledgements, persistent messages.

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use webhooks_bus::Topology;

/// Publishes in flight before the publisher waits for their confirms.
pub const CONFIRM_WINDOW: usize = 1_000;
/// Unacknowledged deliveries a consumer holds.
pub const PREFETCH: u16 = 500;
/// Deliveries acknowledged at once by one multiple-acknowledgement.
pub const ACK_EVERY: usize = 100;

/// Properties of every benchmark message: persistent JSON, as Kazoo and the router publish.
pub fn persistent_json() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into())
}

/// Publishes `messages` (routing key, body) to `exchange` with confirms, [`CONFIRM_WINDOW`]
/// outstanding at most.
pub async fn publish_confirmed(channel: &Channel, exchange: &str, messages: &[(String, Vec<u8>)]) {
    let properties = persistent_json();
    for window in messages.chunks(CONFIRM_WINDOW) {
        for (routing_key, body) in window {
            let _confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    body,
                    properties.clone(),
                )
                .await
                .expect("publish");
        }
        channel.wait_for_confirms().await.expect("publisher confirms");
    }
}

/// Consumes `queue` until `count(body)` summed reaches `target`, acknowledging every
/// [`ACK_EVERY`] deliveries at once; returns how many deliveries it took.
pub async fn consume_until(channel: &Channel, queue: &str, target: usize, count: impl Fn(&[u8]) -> usize) -> usize {
    channel.basic_qos(PREFETCH, BasicQosOptions::default()).await.expect("qos");
    let mut consumer = channel
        .basic_consume(queue.into(), "bench".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .expect("consume");
    let (mut total, mut deliveries) = (0usize, 0usize);
    while total < target {
        let delivery = consumer.next().await.expect("consumer open").expect("a delivery");
        total += count(&delivery.data);
        deliveries += 1;
        if deliveries.is_multiple_of(ACK_EVERY) || total >= target {
            delivery.ack(BasicAckOptions { multiple: true }).await.expect("ack");
        }
    }
    deliveries
}

/// A connection with a confirming publisher, a consumer channel and a fresh durable queue between
/// them: what the broker's own figures are measured on.
struct Probe {
    connection: Connection,
    publisher: Channel,
    consumer: Channel,
    queue: String,
}

impl Probe {
    async fn open(url: &str, prefix: &str) -> Self {
        let connection = Connection::connect(url, ConnectionProperties::default()).await.expect("connect to RabbitMQ");
        let publisher = connection.create_channel().await.expect("channel");
        let consumer = connection.create_channel().await.expect("channel");
        publisher.confirm_select(ConfirmSelectOptions::default()).await.expect("confirm mode");
        let queue = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
        publisher
            .queue_declare(queue.as_str().into(), QueueDeclareOptions::durable(), FieldTable::default())
            .await
            .expect("declare the queue");
        Self { connection, publisher, consumer, queue }
    }
}

/// The broker's one-hop ceiling in messages/s: one durable queue, a confirmed persistent publisher
/// and an acknowledging consumer running together, on the broker at `url`; the rate is `bodies`
/// over the time until the last one is consumed.
pub async fn broker_ceiling(url: &str, bodies: Vec<Vec<u8>>) -> f64 {
    let Probe { connection, publisher, consumer, queue } = Probe::open(url, "bench-ceiling").await;
    let total = bodies.len();
    let messages: Vec<(String, Vec<u8>)> = bodies.into_iter().map(|body| (queue.clone(), body)).collect();
    let started = std::time::Instant::now();
    let consuming = {
        let queue = queue.clone();
        tokio::spawn(async move { consume_until(&consumer, &queue, total, |_| 1).await })
    };
    publish_confirmed(&publisher, "", &messages).await;
    consuming.await.expect("consumer task");
    let rate = total as f64 / started.elapsed().as_secs_f64();
    publisher.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.expect("delete the queue");
    let _ = connection.close(200, "done".into()).await;
    rate
}

/// The broker's own one-hop latency at `rate` messages/s: `bodies` published paced to one
/// durable queue (persistent, confirmed at the end) and consumed with acknowledgements, on the
/// broker at `url`; each message's time from its publish to its delivery, in milliseconds. The
/// floor under any latency measured through the broker at that rate.
pub async fn broker_latency(url: &str, bodies: &[Vec<u8>], rate: f64) -> Vec<f64> {
    let Probe { connection, publisher, consumer, queue } = Probe::open(url, "bench-latency").await;
    consumer.basic_qos(PREFETCH, BasicQosOptions::default()).await.expect("qos");
    let mut deliveries = consumer
        .basic_consume(queue.as_str().into(), "latency".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .expect("consume");
    let started = std::time::Instant::now();
    let count = bodies.len();
    let receiving = tokio::spawn(async move {
        let mut arrivals = Vec::with_capacity(count);
        while arrivals.len() < count {
            let delivery = deliveries.next().await.expect("consumer open").expect("a delivery");
            arrivals.push(started.elapsed());
            if arrivals.len().is_multiple_of(ACK_EVERY) || arrivals.len() == count {
                delivery.ack(BasicAckOptions { multiple: true }).await.expect("ack");
            }
        }
        arrivals
    });
    let mut sent_at = Vec::with_capacity(count);
    for (index, body) in bodies.iter().enumerate() {
        tokio::time::sleep_until((started + std::time::Duration::from_secs_f64(index as f64 / rate)).into()).await;
        sent_at.push(started.elapsed());
        let _confirm = publisher
            .basic_publish("".into(), queue.as_str().into(), BasicPublishOptions::default(), body, persistent_json())
            .await
            .expect("publish");
    }
    publisher.wait_for_confirms().await.expect("publisher confirms");
    // One queue, one consumer: messages arrive in the order they were published.
    let arrivals = receiving.await.expect("consumer task");
    publisher.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.expect("delete the queue");
    let _ = connection.close(200, "done".into()).await;
    arrivals.iter().zip(&sent_at).map(|(arrived, sent)| arrived.saturating_sub(*sent).as_secs_f64() * 1000.0).collect()
}

/// Deletes the durable queues of a benchmark's `topology`. Its router queue stays bound to
/// Kazoo's shared exchanges until it expires: left in place, it would store a copy of every event
/// of the runs that follow and slow the broker down for them.
pub async fn delete_queues(channel: &Channel, topology: &Topology) {
    for queue in [topology.router_queue(), topology.dispatch_queue(), topology.dead_letter_queue()] {
        let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
    }
}

/// The median of a few measurements (sorted in place).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The `quantile` (in `[0, 1]`) of `values` by the nearest-rank method; NaN when empty.
pub fn percentile(values: &[f64], quantile: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// What a benchmark figure is held to.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// Met below this value.
    Below(f64),
    /// Met at this value or above.
    AtLeast(f64),
    /// Context for another figure.
    None,
}

/// A figure a benchmark reports, read from one run's figures `F`.
pub struct Metric<F> {
    /// Which of the measurements it belongs to; figures of one are printed together.
    pub section: &'static str,
    /// What it is.
    pub name: &'static str,
    /// Its unit, printed after the value.
    pub unit: &'static str,
    /// Decimals printed.
    pub decimals: usize,
    /// What it is held to.
    pub goal: Goal,
    /// Reads it from a run's figures.
    pub value: fn(&F) -> f64,
}

impl<F> Metric<F> {
    /// A figure; `const` so that a benchmark lists its figures in a table.
    pub const fn new(
        section: &'static str,
        name: &'static str,
        unit: &'static str,
        decimals: usize,
        goal: Goal,
        value: fn(&F) -> f64,
    ) -> Self {
        Self { section, name, unit, decimals, goal, value }
    }

    /// The figure of one run: its name, value and unit.
    pub fn show(&self, figures: &F) -> String {
        format!("{} {:.*} {}", self.name, self.decimals, (self.value)(figures), self.unit).trim_end().to_owned()
    }

    /// Whether `value` meets the goal.
    pub fn met(&self, value: f64) -> bool {
        match self.goal {
            Goal::Below(goal) => value < goal,
            Goal::AtLeast(goal) => value >= goal,
            Goal::None => true,
        }
    }

    /// The median and range of the runs' `values` (sorted in place, at least one), and the
    /// verdict on the median with how many runs met the goal.
    pub fn summary(&self, values: &mut [f64]) -> String {
        let runs = values.len();
        let runs_met = values.iter().filter(|value| self.met(**value)).count();
        let median = median(values);
        let (min, max) = (values[0], values[runs - 1]);
        let decimals = self.decimals;
        let spread = format!("median {median:.decimals$}, range {min:.decimals$}-{max:.decimals$} {}", self.unit);
        let verdict = match self.goal {
            Goal::None => "(context, no goal)".to_owned(),
            Goal::Below(goal) | Goal::AtLeast(goal) => format!(
                "goal {} {goal:.0} {}: {} ({runs_met} of {runs} runs)",
                if matches!(self.goal, Goal::Below(_)) { "under" } else { "at least" },
                self.unit,
                if self.met(median) { "MET" } else { "NOT MET" },
            ),
        };
        format!("{}: {}; {verdict}", self.name, spread.trim_end())
    }
}
