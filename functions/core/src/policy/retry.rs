//! When to try a failed delivery again: the schedule of SPEC section 4 (5 s, 5 min,
//! 30 min, 2 h, 5 h, 10 h, 10 h after the first attempt), with jitter, honouring a sane
//! `Retry-After`; or a subscription's own schedule (SPEC section 9,
//! [`RetryPolicy::next_own_delay`]): its delays, with the same jitter, rounded up to whole
//! seconds, and a longer `Retry-After` still wins.

use std::time::Duration;

use crate::model::receiver::RetrySchedule;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The delay before each retry: the first entry follows the first attempt.
    pub schedule: Vec<Duration>,
    /// Each delay is moved by up to this fraction either way, so that retries of many
    /// deliveries that failed together do not arrive together.
    pub jitter: f64,
    /// A receiver's `Retry-After` is honoured up to this long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let m = 60;
        let h = 3600;
        Self {
            schedule: [5, 5 * m, 30 * m, 2 * h, 5 * h, 10 * h, 10 * h]
                .map(Duration::from_secs)
                .to_vec(),
            jitter: 0.1,
            max_retry_after: Duration::from_secs(24 * h),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a retry schedule; write delays like 5s,5m,30m,2h")]
pub struct BadSchedule(String);

impl RetryPolicy {
    /// The delay before the next attempt, after attempt number `failed` (from 1) failed,
    /// or `None` when it was the last. `random` is uniform in [0, 1).
    pub fn next_delay(
        &self,
        failed: u32,
        retry_after: Option<Duration>,
        random: f64,
    ) -> Option<Duration> {
        let scheduled = *self.schedule.get(failed.checked_sub(1)? as usize)?;
        if let Some(asked) = retry_after {
            return Some(self.clamp_retry_after(asked));
        }
        Some(self.jittered(scheduled, random))
    }

    /// The delay after attempt number `failed` (from 1) failed, on a subscription's own
    /// schedule, or `None` after its last delay: delay `failed`, moved by the same jitter
    /// and rounded up to whole seconds (SQS delays are whole seconds; 0.9 s must not
    /// become 0). A `Retry-After`, clamped as on the installation's schedule, wins when it
    /// is longer.
    pub fn next_own_delay(
        &self,
        own: &RetrySchedule,
        failed: u32,
        retry_after: Option<Duration>,
        random: f64,
    ) -> Option<Duration> {
        let jittered = self.jittered(own.after(failed)?, random);
        let rounded = Duration::from_secs(
            u64::try_from(jittered.as_nanos().div_ceil(1_000_000_000))
                .unwrap_or(u64::MAX)
                .max(1),
        );
        Some(match retry_after {
            Some(asked) => rounded.max(self.clamp_retry_after(asked)),
            None => rounded,
        })
    }

    fn clamp_retry_after(&self, asked: Duration) -> Duration {
        asked.clamp(Duration::from_secs(1), self.max_retry_after)
    }

    /// `scheduled`, moved by up to the jitter either way; `random` is uniform in [0, 1).
    fn jittered(&self, scheduled: Duration, random: f64) -> Duration {
        let factor = 1.0 + self.jitter * (2.0 * random.clamp(0.0, 1.0) - 1.0);
        scheduled.mul_f64(factor.max(0.0))
    }

    /// How many attempts a delivery gets in all.
    pub fn max_attempts(&self) -> u32 {
        self.schedule.len() as u32 + 1
    }

    /// Parses `5s,5m,30m,2h,5h,10h,10h` (a bare number is seconds; empty means no retries).
    pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, BadSchedule> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                let (number, unit) = item.split_at(
                    item.find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(item.len()),
                );
                let n: u64 = number.parse().map_err(|_| BadSchedule(text.to_owned()))?;
                let secs = match unit {
                    "" | "s" => n,
                    "m" => n * 60,
                    "h" => n * 3600,
                    _ => return Err(BadSchedule(text.to_owned())),
                };
                Ok(Duration::from_secs(secs))
            })
            .collect()
    }
}

/// Reads `Retry-After`: delay-seconds or an HTTP date. Anything else is ignored.
pub fn parse_retry_after(value: &str, now_secs: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(Duration::from_secs(
        at.saturating_sub(now_secs).max(0) as u64
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_default_schedule_is_the_specs() {
        let p = RetryPolicy {
            jitter: 0.0,
            ..Default::default()
        };
        let delays: Vec<_> = (1..=8).map(|a| p.next_delay(a, None, 0.5)).collect();
        assert_eq!(
            delays,
            vec![
                Some(secs(5)),
                Some(secs(300)),
                Some(secs(1800)),
                Some(secs(7200)),
                Some(secs(18000)),
                Some(secs(36000)),
                Some(secs(36000)),
                None
            ]
        );
        assert_eq!(p.max_attempts(), 8);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = RetryPolicy::default();
        assert_eq!(p.next_delay(2, None, 0.0), Some(secs(270)));
        assert_eq!(p.next_delay(2, None, 0.5), Some(secs(300)));
        let top = p.next_delay(2, None, 0.999_999).unwrap();
        assert!(top > secs(329) && top <= secs(330));
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let p = RetryPolicy::default();
        assert_eq!(p.next_delay(1, Some(secs(120)), 0.5), Some(secs(120)));
        assert_eq!(p.next_delay(1, Some(secs(0)), 0.5), Some(secs(1)));
        assert_eq!(
            p.next_delay(1, Some(secs(10 * 86400)), 0.5),
            Some(secs(86400))
        );
        assert_eq!(
            p.next_delay(8, Some(secs(5)), 0.5),
            None,
            "Retry-After gives no extra attempts"
        );
    }

    fn own(delays: &[u32]) -> RetrySchedule {
        RetrySchedule::from_stored(delays.to_vec())
    }

    #[test]
    fn an_own_schedule_replaces_the_installations_then_gives_up() {
        let p = RetryPolicy {
            jitter: 0.0,
            ..Default::default()
        };
        let s = own(&[1, 3]);
        let delays: Vec<_> = (1..=3)
            .map(|a| p.next_own_delay(&s, a, None, 0.5))
            .collect();
        assert_eq!(delays, vec![Some(secs(1)), Some(secs(3)), None]);
        assert_eq!(p.next_own_delay(&s, 0, None, 0.5), None);
    }

    #[test]
    fn own_delays_keep_the_jitter_and_round_up_to_whole_seconds() {
        let p = RetryPolicy::default();
        let s = own(&[1, 3, 10]);
        // 1 s less 10 %: 0.9 s, which must not become 0.
        assert_eq!(p.next_own_delay(&s, 1, None, 0.0), Some(secs(1)));
        // 1 s plus up to 10 %: 1.0... s rounds up to 2.
        assert_eq!(p.next_own_delay(&s, 1, None, 0.999), Some(secs(2)));
        assert_eq!(p.next_own_delay(&s, 1, None, 0.5), Some(secs(1)));
        assert_eq!(p.next_own_delay(&s, 2, None, 0.0), Some(secs(3)), "2.7 s");
        assert_eq!(p.next_own_delay(&s, 3, None, 0.0), Some(secs(9)));
        assert_eq!(
            p.next_own_delay(&s, 3, None, 0.75),
            Some(secs(11)),
            "10.5 s"
        );
        for r in [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999_999] {
            let d = p.next_own_delay(&s, 3, None, r).unwrap();
            assert_eq!(d.subsec_nanos(), 0, "whole seconds");
            assert!((secs(9)..=secs(11)).contains(&d), "{d:?}");
        }
    }

    #[test]
    fn a_longer_retry_after_wins_over_an_own_delay_and_a_shorter_does_not() {
        let p = RetryPolicy {
            jitter: 0.0,
            ..Default::default()
        };
        let s = own(&[10, 20]);
        assert_eq!(
            p.next_own_delay(&s, 1, Some(secs(120)), 0.5),
            Some(secs(120))
        );
        assert_eq!(p.next_own_delay(&s, 1, Some(secs(2)), 0.5), Some(secs(10)));
        assert_eq!(
            p.next_own_delay(&s, 2, Some(secs(10 * 86400)), 0.5),
            Some(secs(86400)),
            "clamped as always"
        );
        assert_eq!(
            p.next_own_delay(&s, 3, Some(secs(5)), 0.5),
            None,
            "Retry-After gives no extra attempts"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("120", 0), Some(secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1_445_412_400),
            Some(secs(80))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1_445_412_500),
            Some(secs(0))
        );
        assert_eq!(parse_retry_after("soon", 0), None);
        assert_eq!(parse_retry_after("-5", 0), None);
    }

    #[test]
    fn schedules_parse() {
        assert_eq!(
            RetryPolicy::parse_schedule("5s, 5m,2h,7").unwrap(),
            vec![secs(5), secs(300), secs(7200), secs(7)]
        );
        assert!(RetryPolicy::parse_schedule("").unwrap().is_empty());
        assert!(RetryPolicy::parse_schedule("5x").is_err());
    }
}
