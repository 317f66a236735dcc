//! A bounded share of delivery capacity per subscription: one receiver that is slow or
//! failing must not hold the delivery stage while others wait.
//!
//! Each delivery stage instance (a Lambda instance, the local runner) keeps, per
//! subscription, its attempts in flight and a cool-down. A job is *deferred* (back on the
//! queue with a delay, not attempted, its attempt number unchanged, nothing logged) when:
//!
//! * the subscription's breaker is open: an attempt that failed slowly (it took at least
//!   `slow_after`, a timeout included) opens it for `cooldown`; when that has passed, one
//!   job goes through as a probe while the others keep waiting, and its success closes
//!   the breaker (its failure opens it again, for twice as long, up to `max_cooldown`);
//! * an attempt to the subscription has been in flight for `slow_after` already: the
//!   receiver is slow right now;
//! * `unproven_in_flight` attempts to it are in flight already and it has not delivered
//!   quickly (within `slow_after`) in the last `proven_for`: a receiver not yet known to
//!   be quick holds two attempts at most, so a slow one takes two of the stage's batches
//!   at most before the breaker knows it.
//!
//! Healthy, quick subscriptions are never limited: a proven receiver that turns slow all
//! at once holds the batches that reached it for one request limit, then the rules above
//! apply. (A cap on a proven receiver's attempts in flight would throttle a busy, healthy
//! one: the local runner has 80 jobs in flight at once, a Lambda instance 10.) The state lives in memory, per instance, at no AWS cost: across Lambda instances
//! each one learns on its own, so a slow subscription costs each instance at most one
//! probe per cool-down. The decisions are pure functions of the state and a time, so
//! tests drive them without I/O.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::ids::SubscriptionId;

#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// Off: every job is attempted (for tests of the other rules).
    pub enabled: bool,
    /// An attempt that takes this long is slow.
    pub slow_after: Duration,
    /// How long a slow failure keeps a subscription's jobs waiting, at first.
    pub cooldown: Duration,
    /// The longest wait, after failed probes.
    pub max_cooldown: Duration,
    /// Attempts to a subscription not proven quick in flight at once, per instance.
    pub unproven_in_flight: u32,
    /// How long a quick delivery proves a subscription quick.
    pub proven_for: Duration,
    /// How long a job waits when its subscription is busy (slow in flight, or probing).
    pub busy_wait: Duration,
    /// How long a job waits when its not-yet-proven subscription has its attempts in
    /// flight: short, as the receiver may prove quick at once.
    pub unproven_wait: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            slow_after: Duration::from_secs(2),
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(300),
            unproven_in_flight: 2,
            proven_for: Duration::from_secs(300),
            busy_wait: Duration::from_secs(30),
            unproven_wait: Duration::from_secs(1),
        }
    }
}

impl BreakerSettings {
    /// Every job attempted, whatever its receiver does.
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
}

/// How an admitted attempt ended, as the breaker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Delivered,
    /// No answer within the request limit: a slow failure, however short the limit.
    TimedOut,
    Failed,
}

#[derive(Debug, Default)]
struct State {
    /// Start times of the attempts in flight, oldest first: a busy subscription has
    /// dozens, and each admission looks at the oldest alone.
    in_flight: Vec<Instant>,
    open_until: Option<Instant>,
    /// The last cool-down, doubled after a failed probe.
    cooldown: Option<Duration>,
    /// A probe is in flight: the breaker is half open.
    probing: bool,
    /// Until when a quick delivery vouches for the receiver.
    proven_until: Option<Instant>,
}

/// Whether a job may be attempted now.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// Put it back on the queue for this long.
    Defer(Duration),
}

/// The per-instance breaker of the delivery stage.
#[derive(Debug, Default, Clone)]
pub struct Breaker {
    settings: BreakerSettings,
    states: Arc<Mutex<HashMap<SubscriptionId, State>>>,
}

/// An admitted attempt; hand it back to [`Breaker::finish`] (dropping it unfinished
/// counts as a fast failure, so the slot is never lost).
#[derive(Debug)]
pub struct Permit {
    breaker: Breaker,
    id: SubscriptionId,
    started: Instant,
    done: bool,
    /// This attempt is the probe of a breaker that was open.
    probe: bool,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            states: Arc::default(),
        }
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<SubscriptionId, State>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks to attempt a job of subscription `id` at `now`.
    pub fn admit(&self, id: &SubscriptionId, now: Instant) -> Result<Permit, Duration> {
        let s = &self.settings;
        let mut states = self.states();
        if !s.enabled {
            return Ok(Permit {
                breaker: self.clone(),
                id: id.clone(),
                started: now,
                done: true,
                probe: false,
            });
        }
        let state = states.entry(id.clone()).or_default();
        let proven = state.proven_until.is_some_and(|p| p > now);
        let defer = if let Some(until) = state.open_until.filter(|u| *u > now) {
            Some(until - now)
        } else if state.probing
            || state
                .in_flight
                .first()
                .is_some_and(|oldest| now.duration_since(*oldest) >= s.slow_after)
        {
            Some(s.busy_wait)
        } else if !proven && state.in_flight.len() as u32 >= s.unproven_in_flight {
            Some(s.unproven_wait)
        } else {
            None
        };
        if let Some(wait) = defer {
            return Err(wait.max(Duration::from_secs(1)));
        }
        let probe = state.open_until.take().is_some();
        if probe {
            state.probing = true;
        }
        // After the attempts that started no later (callers read the clock before the
        // lock, so `now` may be a little older than the latest start).
        let at = state.in_flight.partition_point(|t| *t <= now);
        state.in_flight.insert(at, now);
        Ok(Permit {
            breaker: self.clone(),
            id: id.clone(),
            started: now,
            done: false,
            probe,
        })
    }

    /// Gives back an admitted attempt that was not made (its job went back on the queue
    /// untried): it leaves no trace, and a probe's turn passes to the next job.
    pub fn withdraw(&self, mut permit: Permit) {
        if permit.done {
            return;
        }
        permit.done = true;
        let mut states = self.states();
        let Some(state) = states.get_mut(&permit.id) else {
            return;
        };
        let i = state.in_flight.partition_point(|t| *t < permit.started);
        if state.in_flight.get(i) == Some(&permit.started) {
            state.in_flight.remove(i);
        }
        if permit.probe {
            state.probing = false;
            state.open_until = Some(permit.started);
        }
    }

    /// Records how an admitted attempt ended, at `now`.
    pub fn finish(&self, mut permit: Permit, ended: Ended, now: Instant) {
        if !permit.done {
            permit.done = true;
            self.settle(&permit.id, permit.started, ended, now);
        }
    }

    fn settle(&self, id: &SubscriptionId, started: Instant, ended: Ended, now: Instant) {
        let s = &self.settings;
        let mut states = self.states();
        let Some(state) = states.get_mut(id) else {
            return;
        };
        let i = state.in_flight.partition_point(|t| *t < started);
        if state.in_flight.get(i) == Some(&started) {
            state.in_flight.remove(i);
        }
        let was_probe = std::mem::take(&mut state.probing);
        let slow = ended == Ended::TimedOut || now.duration_since(started) >= s.slow_after;
        if ended == Ended::Delivered {
            state.open_until = None;
            state.cooldown = None;
            if !slow {
                state.proven_until = Some(now + s.proven_for);
            }
        } else if slow || was_probe {
            let cooldown = match (was_probe, state.cooldown) {
                (true, Some(last)) => (last * 2).min(s.max_cooldown),
                _ => s.cooldown,
            };
            state.cooldown = Some(cooldown);
            state.open_until = Some(now + cooldown);
        }
        if state.in_flight.is_empty()
            && state.open_until.is_none()
            && !state.probing
            && state.proven_until.is_none_or(|p| p <= now)
        {
            states.remove(id);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.breaker
                .settle(&self.id, self.started, Ended::Failed, self.started);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SubscriptionId {
        SubscriptionId::parse(&format!("{:024x}", n)).unwrap()
    }

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings {
            enabled: true,
            slow_after: Duration::from_secs(2),
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(100),
            unproven_in_flight: 1,
            proven_for: Duration::from_secs(60),
            busy_wait: Duration::from_secs(10),
            unproven_wait: Duration::from_secs(1),
        })
    }

    #[test]
    fn a_withdrawn_attempt_leaves_no_trace_and_passes_the_probe_on() {
        let b = breaker();
        let t0 = Instant::now();
        // Unproven, one in flight at most: a withdrawn attempt frees its place.
        let p = b.admit(&id(1), t0).unwrap();
        assert!(b.admit(&id(1), t0).is_err());
        b.withdraw(p);
        let p = b.admit(&id(1), t0).unwrap();
        // A slow failure opens the breaker; after the cool-down, the probe is withdrawn,
        // and the next job probes instead of waiting for an answer that never comes.
        b.finish(p, Ended::TimedOut, t0 + Duration::from_secs(3));
        let later = t0 + Duration::from_secs(40);
        let probe = b.admit(&id(1), later).unwrap();
        assert!(b.admit(&id(1), later).is_err());
        b.withdraw(probe);
        let probe = b.admit(&id(1), later).unwrap();
        b.finish(probe, Ended::Delivered, later);
        assert!(b.admit(&id(1), later).is_ok());
    }

    #[test]
    fn proven_subscriptions_are_not_limited() {
        let b = breaker();
        let t = Instant::now();
        let first = b.admit(&id(1), t).unwrap();
        assert_eq!(
            b.admit(&id(1), t).unwrap_err(),
            Duration::from_secs(1),
            "one attempt while it is unproven; the others wait a moment"
        );
        b.finish(first, Ended::Delivered, t + Duration::from_millis(5));
        let permits: Vec<Permit> = (0..100).map(|_| b.admit(&id(1), t).unwrap()).collect();
        assert!(b.admit(&id(2), t).is_ok(), "others are not held up");
        for p in permits {
            b.finish(p, Ended::Delivered, t + Duration::from_millis(5));
        }
        assert!(b.admit(&id(1), t).is_ok());
    }

    #[test]
    fn a_receiver_slow_right_now_gets_no_more_attempts() {
        let b = breaker();
        let t = Instant::now();
        let quick = b.admit(&id(1), t).unwrap();
        b.finish(quick, Ended::Delivered, t);
        let _slow = b.admit(&id(1), t).unwrap();
        assert!(b.admit(&id(1), t + Duration::from_secs(1)).is_ok());
        assert_eq!(
            b.admit(&id(1), t + Duration::from_secs(2)).unwrap_err(),
            Duration::from_secs(10),
            "an attempt in flight for 2 s makes it slow"
        );
    }

    #[test]
    fn the_oldest_attempt_in_flight_counts_whatever_order_they_were_admitted_in() {
        let b = breaker();
        let t = Instant::now();
        let quick = b.admit(&id(1), t).unwrap();
        b.finish(quick, Ended::Delivered, t);
        let _later = b.admit(&id(1), t + Duration::from_secs(1)).unwrap();
        // Admitted after, with a clock read before: the oldest in flight.
        let older = b.admit(&id(1), t).unwrap();
        assert_eq!(
            b.admit(&id(1), t + Duration::from_secs(2)).unwrap_err(),
            Duration::from_secs(10),
            "the older attempt has been in flight for 2 s"
        );
        b.finish(older, Ended::Delivered, t + Duration::from_millis(1500));
        assert!(
            b.admit(&id(1), t + Duration::from_secs(2)).is_ok(),
            "the one left has been in flight for 1 s"
        );
    }

    #[test]
    fn a_slow_failure_opens_the_breaker_and_a_probe_closes_it() {
        let b = breaker();
        let t = Instant::now();
        let p = b.admit(&id(1), t).unwrap();
        b.finish(p, Ended::Failed, t + Duration::from_secs(9));
        let t1 = t + Duration::from_secs(10);
        assert_eq!(b.admit(&id(1), t1).unwrap_err(), Duration::from_secs(29));
        // After the cool-down: one probe, the rest wait.
        let t2 = t + Duration::from_secs(40);
        let probe = b.admit(&id(1), t2).unwrap();
        assert!(b.admit(&id(1), t2).is_err(), "one probe at a time");
        // A failed probe doubles the wait.
        b.finish(probe, Ended::Failed, t2 + Duration::from_millis(10));
        let t3 = t2 + Duration::from_secs(1);
        assert_eq!(
            b.admit(&id(1), t3).unwrap_err(),
            Duration::from_secs(59) + Duration::from_millis(10)
        );
        let t4 = t2 + Duration::from_secs(61);
        let probe = b.admit(&id(1), t4).unwrap();
        b.finish(probe, Ended::Delivered, t4);
        let a = b.admit(&id(1), t4).unwrap();
        let c = b.admit(&id(1), t4).unwrap();
        drop((a, c));
        assert!(
            b.admit(&id(1), t4 + Duration::from_secs(61)).is_ok(),
            "proven for a while only"
        );
    }

    #[test]
    fn fast_failures_do_not_open_it_and_a_dropped_permit_frees_its_slot() {
        let b = breaker();
        let t = Instant::now();
        let p = b.admit(&id(1), t).unwrap();
        b.finish(p, Ended::Failed, t + Duration::from_millis(50));
        assert!(b.admit(&id(1), t + Duration::from_secs(1)).is_ok());
        let b = breaker();
        for _ in 0..3 {
            drop(b.admit(&id(1), t).unwrap());
        }
        assert!(
            b.states().is_empty(),
            "nothing kept for an idle, unproven subscription"
        );
        assert!(
            b.admit(&id(1), t).is_ok(),
            "dropped permits gave their slots back"
        );
        assert!(b.states().len() <= 1);
    }

    #[test]
    fn a_timeout_is_a_slow_failure_however_short_the_limit() {
        let b = breaker();
        let t = Instant::now();
        let p = b.admit(&id(1), t).unwrap();
        b.finish(p, Ended::TimedOut, t + Duration::from_millis(500));
        assert!(b.admit(&id(1), t + Duration::from_secs(1)).is_err());
        let off = Breaker::new(BreakerSettings::off());
        let p = off.admit(&id(1), t).unwrap();
        off.finish(p, Ended::TimedOut, t + Duration::from_secs(9));
        assert!(
            (0..20).all(|_| off.admit(&id(1), t).is_ok()),
            "off admits everything"
        );
    }
}
