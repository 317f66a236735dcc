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
//! * `max_in_flight` attempts to it are in flight already.
//!
//! Healthy subscriptions are never limited by the first two rules, and the third only caps
//! bursts. The state lives in memory, per instance, at no AWS cost: across Lambda instances
//! each one learns on its own, so a slow subscription costs each instance at most one
//! probe per cool-down. The decisions are pure functions of the state and a time, so
//! tests drive them without I/O.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ids::SubscriptionId;

#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// An attempt that takes this long is slow.
    pub slow_after: Duration,
    /// How long a slow failure keeps a subscription's jobs waiting, at first.
    pub cooldown: Duration,
    /// The longest wait, after failed probes.
    pub max_cooldown: Duration,
    /// Attempts to one subscription in flight at once, per instance.
    pub max_in_flight: u32,
    /// How long a job waits when its subscription is busy (in flight or probing).
    pub busy_wait: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            slow_after: Duration::from_secs(2),
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(300),
            max_in_flight: 8,
            busy_wait: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Start times of the attempts in flight.
    in_flight: Vec<Instant>,
    open_until: Option<Instant>,
    /// The last cool-down, doubled after a failed probe.
    cooldown: Option<Duration>,
    /// A probe is in flight: the breaker is half open.
    probing: bool,
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
        let state = states.entry(id.clone()).or_default();
        let defer = if let Some(until) = state.open_until.filter(|u| *u > now) {
            Some(until - now)
        } else if state.probing
            || state
                .in_flight
                .iter()
                .any(|t| now.duration_since(*t) >= s.slow_after)
            || state.in_flight.len() as u32 >= s.max_in_flight
        {
            Some(s.busy_wait)
        } else {
            None
        };
        if let Some(wait) = defer {
            return Err(wait.max(Duration::from_secs(1)));
        }
        if state.open_until.take().is_some() {
            state.probing = true;
        }
        state.in_flight.push(now);
        Ok(Permit {
            breaker: self.clone(),
            id: id.clone(),
            started: now,
            done: false,
        })
    }

    /// Records how an admitted attempt ended (`delivered` or not) at `now`.
    pub fn finish(&self, mut permit: Permit, delivered: bool, now: Instant) {
        permit.done = true;
        self.settle(&permit.id, permit.started, delivered, now);
    }

    fn settle(&self, id: &SubscriptionId, started: Instant, delivered: bool, now: Instant) {
        let s = &self.settings;
        let mut states = self.states();
        let Some(state) = states.get_mut(id) else {
            return;
        };
        if let Some(i) = state.in_flight.iter().position(|t| *t == started) {
            state.in_flight.remove(i);
        }
        let was_probe = std::mem::take(&mut state.probing);
        if delivered {
            state.open_until = None;
            state.cooldown = None;
        } else if now.duration_since(started) >= s.slow_after || was_probe {
            let cooldown = match (was_probe, state.cooldown) {
                (true, Some(last)) => (last * 2).min(s.max_cooldown),
                _ => s.cooldown,
            };
            state.cooldown = Some(cooldown);
            state.open_until = Some(now + cooldown);
        }
        if state.in_flight.is_empty() && state.open_until.is_none() && !state.probing {
            states.remove(id);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.breaker
                .settle(&self.id, self.started, false, self.started);
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
            slow_after: Duration::from_secs(2),
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(100),
            max_in_flight: 3,
            busy_wait: Duration::from_secs(10),
        })
    }

    #[test]
    fn healthy_subscriptions_go_up_to_the_in_flight_cap() {
        let b = breaker();
        let t = Instant::now();
        let permits: Vec<Permit> = (0..3).map(|_| b.admit(&id(1), t).unwrap()).collect();
        assert_eq!(b.admit(&id(1), t).unwrap_err(), Duration::from_secs(10));
        assert!(b.admit(&id(2), t).is_ok(), "others are not held up");
        for p in permits {
            b.finish(p, true, t + Duration::from_millis(5));
        }
        assert!(b.admit(&id(1), t).is_ok());
    }

    #[test]
    fn a_receiver_slow_right_now_gets_no_more_attempts() {
        let b = breaker();
        let t = Instant::now();
        let _slow = b.admit(&id(1), t).unwrap();
        assert!(b.admit(&id(1), t + Duration::from_secs(1)).is_ok());
        assert_eq!(
            b.admit(&id(1), t + Duration::from_secs(2)).unwrap_err(),
            Duration::from_secs(10),
            "an attempt in flight for 2 s makes it slow"
        );
    }

    #[test]
    fn a_slow_failure_opens_the_breaker_and_a_probe_closes_it() {
        let b = breaker();
        let t = Instant::now();
        let p = b.admit(&id(1), t).unwrap();
        b.finish(p, false, t + Duration::from_secs(9));
        let t1 = t + Duration::from_secs(10);
        assert_eq!(b.admit(&id(1), t1).unwrap_err(), Duration::from_secs(29));
        // After the cool-down: one probe, the rest wait.
        let t2 = t + Duration::from_secs(40);
        let probe = b.admit(&id(1), t2).unwrap();
        assert!(b.admit(&id(1), t2).is_err(), "one probe at a time");
        // A failed probe doubles the wait.
        b.finish(probe, false, t2 + Duration::from_millis(10));
        let t3 = t2 + Duration::from_secs(1);
        assert_eq!(
            b.admit(&id(1), t3).unwrap_err(),
            Duration::from_secs(59) + Duration::from_millis(10)
        );
        let t4 = t2 + Duration::from_secs(61);
        let probe = b.admit(&id(1), t4).unwrap();
        b.finish(probe, true, t4);
        let a = b.admit(&id(1), t4).unwrap();
        let c = b.admit(&id(1), t4).unwrap();
        drop((a, c));
    }

    #[test]
    fn fast_failures_do_not_open_it_and_a_dropped_permit_frees_its_slot() {
        let b = breaker();
        let t = Instant::now();
        let p = b.admit(&id(1), t).unwrap();
        b.finish(p, false, t + Duration::from_millis(50));
        assert!(b.admit(&id(1), t + Duration::from_secs(1)).is_ok());
        let b = breaker();
        for _ in 0..3 {
            drop(b.admit(&id(1), t).unwrap());
        }
        assert!(
            b.admit(&id(1), t).is_ok(),
            "dropped permits gave their slots back"
        );
        assert!(b.states().len() <= 1);
    }
}
