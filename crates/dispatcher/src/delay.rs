//! Delay queues: where scheduled retries wait (docs/kazoo.md#retries).
//!
//! Each delay level of the retry policy is a durable queue `<prefix>.delay.<milliseconds>` with
//! that message TTL, dead-lettering to the jobs exchange with the `dispatch` routing key, so an
//! expired retry lands back in the dispatch queue. Every retry also carries its own expiration
//! (its jittered delay, never above the level): the broker only expires messages at the head of
//! a queue, and keeping the delays within one level close together bounds how long a message
//! can wait behind a longer one. Levels are named by their length, so changing the configured
//! delays declares new queues instead of clashing with the arguments of existing ones.
//!
//! The slow lane, `<prefix>.dispatch.slow`, is declared the same way: dispatchers consume it
//! beside the dispatch queue, and what none takes within [`SLOW_LANE_TTL`] goes back to the
//! dispatch queue rather than waiting for ever.

use std::time::Duration;

use webhooks_bus::{Bus, BusError, DISPATCH_ROUTING_KEY, DelayQueue, Topology};
use webhooks_model::retry::RetryPolicy;

/// How long a job may wait in the slow lane before it returns to the dispatch queue.
pub const SLOW_LANE_TTL: Duration = Duration::from_secs(3600);

/// The delay queues of one topology and policy.
#[derive(Debug, Clone)]
pub struct DelayQueues {
    /// The topology's name prefix.
    prefix: String,
    /// Where expired retries go.
    jobs_exchange: String,
    /// The levels, shortest first.
    levels: Vec<Duration>,
}

impl DelayQueues {
    /// The delay queues `policy` needs under `topology`.
    pub fn new(topology: &Topology, policy: &RetryPolicy) -> Self {
        Self { prefix: topology.prefix.clone(), jobs_exchange: topology.jobs_exchange(), levels: policy.levels() }
    }

    /// The queue name of a level.
    pub fn queue_name(&self, level: Duration) -> String {
        format!("{}.delay.{}", self.prefix, level.as_millis())
    }

    /// The queue a retry waiting `delay` goes to, and the expiration it carries (milliseconds,
    /// at least 1: an expiration of 0 would mean "deliver now or drop" to the broker).
    pub fn route(&self, delay: Duration) -> (String, u64) {
        let level = self.levels.iter().copied().find(|level| *level >= delay).or_else(|| self.levels.last().copied());
        let level = level.unwrap_or(delay);
        let expiration = delay.min(level).as_millis().max(1);
        (self.queue_name(level), u64::try_from(expiration).unwrap_or(u64::MAX))
    }

    /// The slow lane: jobs of slow hosts, consumed apart from the dispatch queue.
    pub fn slow_lane(&self) -> String {
        format!("{}.dispatch.slow", self.prefix)
    }

    /// Every level's queue and the slow lane.
    pub fn queues(&self) -> Vec<DelayQueue> {
        let levels = self.levels.iter().map(|level| (self.queue_name(*level), *level));
        levels
            .chain([(self.slow_lane(), SLOW_LANE_TTL)])
            .map(|(name, ttl)| DelayQueue {
                name,
                ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
                target_exchange: self.jobs_exchange.clone(),
                target_routing_key: DISPATCH_ROUTING_KEY.to_owned(),
            })
            .collect()
    }

    /// Declares every level's queue and the slow lane (idempotent).
    pub async fn declare(&self, bus: &Bus) -> Result<(), BusError> {
        for queue in self.queues() {
            bus.declare_delay_queue(&queue).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues() -> DelayQueues {
        let policy =
            RetryPolicy::new(vec![Duration::from_secs(5), Duration::from_secs(30)], 0.2, Duration::from_secs(3600))
                .expect("valid policy");
        DelayQueues::new(&Topology::new("t1"), &policy)
    }

    #[test]
    fn each_delay_goes_to_the_shortest_level_that_holds_it() {
        let queues = queues();
        assert_eq!(queues.route(Duration::from_secs(5)), ("t1.delay.6000".to_owned(), 5000));
        assert_eq!(queues.route(Duration::from_millis(5999)), ("t1.delay.6000".to_owned(), 5999));
        assert_eq!(queues.route(Duration::from_millis(6001)), ("t1.delay.36000".to_owned(), 6001));
        assert_eq!(queues.route(Duration::from_secs(90)), ("t1.delay.3600000".to_owned(), 90_000));
        assert_eq!(queues.route(Duration::from_secs(7200)), ("t1.delay.3600000".to_owned(), 3_600_000));
        assert_eq!(queues.route(Duration::ZERO), ("t1.delay.6000".to_owned(), 1));
    }
}
