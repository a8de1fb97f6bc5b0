//! Publishing a scenario's events on `callevt` at a steady rate, with publisher confirms.

use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Confirmation, Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webhooks_model::ids::AccountId;
use webhooks_test_support::bench::persistent_json;
use webhooks_test_support::bus::amqp_url;
use webhooks_test_support::fixtures::{call_event, channel_create_body};

use super::{CONFIRM_WINDOW, call_id};

/// What the publisher did.
pub struct Published {
    pub started: Instant,
    /// When each event was published.
    pub sent: Vec<Instant>,
    /// When the broker confirmed each (queued it), if it did.
    pub confirmed: Vec<Option<Instant>>,
}

impl Published {
    /// The events the broker confirmed.
    pub fn confirmed_events(&self) -> impl Iterator<Item = usize> + '_ {
        self.confirmed.iter().enumerate().filter_map(|(sequence, confirmed)| confirmed.map(|_| sequence))
    }

    /// Every (event, position) of `positions` of the confirmed events, for which `wanted` holds.
    pub fn expected(&self, positions: &[usize], wanted: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
        self.confirmed_events()
            .filter(|&sequence| wanted(sequence))
            .flat_map(|sequence| positions.iter().map(move |&position| (sequence, position)))
            .collect()
    }

    /// One line: how many were published and confirmed, in how long.
    pub fn summary(&self) -> String {
        let last = self.sent.last().map_or(Duration::ZERO, |sent| sent.duration_since(self.started));
        format!(
            "{} events published in {last:.1?}, {} confirmed",
            self.sent.len(),
            self.confirmed.iter().filter(|confirmed| confirmed.is_some()).count()
        )
    }
}

/// Publishes call events to Kazoo's `callevt` exchange on the RabbitMQ server itself (never
/// through a proxy), or on a node of a scenario's own cluster, paced, with publisher confirms.
pub struct Publisher {
    /// Events published and answered by the broker so far.
    progress: watch::Receiver<usize>,
    task: JoinHandle<Published>,
}

impl Publisher {
    /// Starts publishing `count` events of run `run` at `rate` per second (as fast as the
    /// broker confirms when infinite), event `n` to `accounts[n % accounts.len()]`.
    pub fn start(run: &str, accounts: &[AccountId], count: usize, rate: f64) -> Publisher {
        Publisher::start_on(&amqp_url(), run, accounts, count, rate)
    }

    /// As [`Publisher::start`], on the broker at `url`.
    pub fn start_on(url: &str, run: &str, accounts: &[AccountId], count: usize, rate: f64) -> Publisher {
        let (sender, progress) = watch::channel(0);
        let task = tokio::spawn(publish(url.to_owned(), run.to_owned(), accounts.to_vec(), count, rate, sender));
        Publisher { progress, task }
    }

    /// Waits until `count` events are published and answered.
    pub async fn reached(&mut self, count: usize) {
        self.progress.wait_for(|&published| published >= count).await.expect("the publisher runs");
    }

    /// Events published and answered so far.
    pub fn answered(&self) -> usize {
        *self.progress.borrow()
    }

    /// Waits until every event is published; what was published.
    pub async fn finish(self) -> Published {
        self.task.await.expect("the publisher finishes")
    }
}

async fn publish(
    url: String,
    run: String,
    accounts: Vec<AccountId>,
    count: usize,
    rate: f64,
    progress: watch::Sender<usize>,
) -> Published {
    let connection = Connection::connect(&url, ConnectionProperties::default()).await.expect("RabbitMQ answers");
    let channel = connection.create_channel().await.expect("a channel");
    channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    let template = channel_create_body();
    let started = Instant::now();
    let mut sent = Vec::with_capacity(count);
    let mut confirmed = vec![None; count];
    let mut next = 0;
    while next < count {
        let due = if rate.is_finite() { (started.elapsed().as_secs_f64() * rate) as usize + 1 } else { count };
        let due = due.min(count).min(next + CONFIRM_WINDOW);
        if due <= next {
            // Pacing: the next event is not due yet.
            tokio::time::sleep_until((started + Duration::from_secs_f64(next as f64 / rate)).into()).await;
            continue;
        }
        let mut confirms = Vec::with_capacity(due - next);
        for sequence in next..due {
            let (routing_key, bytes) =
                call_event(&template, &accounts[sequence % accounts.len()], &call_id(&run, sequence));
            // Mandatory: an event no router queue is bound for comes back instead of vanishing.
            let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
            sent.push(Instant::now());
            let confirm = channel
                .basic_publish("callevt".into(), routing_key.as_str().into(), options, &bytes, persistent_json())
                .await
                .expect("published");
            confirms.push((sequence, confirm));
        }
        for (sequence, confirm) in confirms {
            if matches!(confirm.await.expect("a confirmation"), Confirmation::Ack(None)) {
                confirmed[sequence] = Some(Instant::now());
            }
        }
        next = due;
        progress.send_replace(next);
    }
    let _ = connection.close(200, "done".into()).await;
    Published { started, sent, confirmed }
}
