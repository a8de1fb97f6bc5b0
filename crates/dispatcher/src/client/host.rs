//! The hosts called: each one's limit on callouts in flight, and how quickly it has been
//! answering (what sends its jobs to the slow lane).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// One host: its limit on callouts in flight, and how quickly it has been answering.
pub(super) struct Host {
    /// Slots of callouts in flight.
    pub(super) slots: Arc<Semaphore>,
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
pub(super) enum Ended {
    /// In less than `slow_after`.
    Quick,
    /// Answered (or failed), but in `slow_after` or more.
    Slow,
    /// Not within the timeout.
    TimedOut,
}

impl Host {
    /// A host allowing `slots` callouts in flight.
    pub(super) fn new(slots: usize) -> Self {
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
    pub(super) fn is_slow(&self, slow_after: Duration) -> bool {
        let pace = self.pace();
        let lately_slow = match pace.lately {
            Lately::Quick => false,
            Lately::Slow(since) => since.elapsed() >= slow_after,
            Lately::TimedOut => true,
        };
        lately_slow || (pace.in_flight > 0 && pace.progress_at.elapsed() >= slow_after)
    }

    /// Counts a callout in flight until the guard is finished or dropped.
    pub(super) fn start(&self) -> InFlight<'_> {
        let mut pace = self.pace();
        if pace.in_flight == 0 {
            pace.progress_at = Instant::now();
        }
        pace.in_flight += 1;
        InFlight { host: self }
    }
}

/// A callout in flight to a host.
pub(super) struct InFlight<'a> {
    /// Its host.
    host: &'a Host,
}

impl InFlight<'_> {
    /// The callout ended as `ended` says.
    pub(super) fn finish(self, ended: Ended) {
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
}
