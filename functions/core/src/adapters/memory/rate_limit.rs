//! Rate-limit counters in memory, shared by every delivery worker of the process (the
//! local runner's): one counter per subscription and second, those a minute older than
//! the latest second asked for forgotten.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::model::ids::SubscriptionId;
use crate::model::subscription::SubscriptionRef;
use crate::ports::rate_limit::RateLimiter;
use crate::ports::store::StoreError;

#[derive(Default)]
pub struct MemoryRateLimiter {
    counters: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    latest: i64,
    by_second: HashMap<(SubscriptionId, i64), u64>,
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn take(
        &self,
        subscription: &SubscriptionRef,
        second: i64,
        wanted: u32,
    ) -> Result<u64, StoreError> {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if second > counters.latest {
            counters.latest = second;
            counters.by_second.retain(|(_, s), _| *s >= second - 60);
        }
        let count = counters
            .by_second
            .entry((subscription.id.clone(), second))
            .or_default();
        *count += u64::from(wanted);
        Ok(*count)
    }
}
