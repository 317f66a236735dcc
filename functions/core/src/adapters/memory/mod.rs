//! In-memory adapters, with the same behaviour as the AWS ones (one shared test suite
//! runs against both).

pub mod queue;
pub mod rate_limit;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::model::clock::Millis;
use crate::model::identity::{Deployment, Owner, UserId};
use crate::model::ids::SubscriptionId;
use crate::model::subscription::{Subscription, SubscriptionRef};
use crate::ports::delivery_log::{Attempt, DeliveryLog, LogCursor, LogPage, page_of};
use crate::ports::idempotency::{Claim, ClaimTimes, Claimant, IdempotencyStore};
use crate::ports::store::{Page, StoreError, SubscriptionStore};

type OwnerKey = (String, UserId, SubscriptionId);
type EventKey = (String, String, SubscriptionId);

#[derive(Default)]
struct Tables {
    by_owner: BTreeMap<OwnerKey, Subscription>,
    by_event: BTreeMap<EventKey, Owner>,
}

/// Subscriptions in a map, with a secondary index by (deployment, event) like the table's.
#[derive(Default)]
pub struct MemorySubscriptionStore {
    tables: Mutex<Tables>,
}

fn owner_key(owner: &Owner, id: &SubscriptionId) -> OwnerKey {
    (
        owner.deployment.as_str().to_owned(),
        owner.user_id,
        id.clone(),
    )
}

impl Tables {
    /// Stores a subscription; only an active one is in the fan-out's index, as on
    /// DynamoDB.
    fn write(&mut self, s: &Subscription) {
        let index_key = (
            s.owner.deployment.as_str().to_owned(),
            s.event_id.clone(),
            s.id.clone(),
        );
        if s.active {
            self.by_event.insert(index_key, s.owner.clone());
        } else {
            self.by_event.remove(&index_key);
        }
        self.by_owner.insert(owner_key(&s.owner, &s.id), s.clone());
    }
}

impl MemorySubscriptionStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl SubscriptionStore for MemorySubscriptionStore {
    async fn put(&self, s: &Subscription) -> Result<(), StoreError> {
        self.lock().write(s);
        Ok(())
    }

    async fn replace(&self, s: &Subscription) -> Result<bool, StoreError> {
        let mut t = self.lock();
        if !t.by_owner.contains_key(&owner_key(&s.owner, &s.id)) {
            return Ok(false);
        }
        t.write(s);
        Ok(true)
    }

    async fn get(
        &self,
        owner: &Owner,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        Ok(self.lock().by_owner.get(&owner_key(owner, id)).cloned())
    }

    async fn get_many(&self, keys: &[SubscriptionRef]) -> Result<Vec<Subscription>, StoreError> {
        let t = self.lock();
        let unique: std::collections::BTreeSet<OwnerKey> =
            keys.iter().map(|k| owner_key(&k.owner, &k.id)).collect();
        Ok(unique
            .iter()
            .filter_map(|k| t.by_owner.get(k).cloned())
            .collect())
    }

    async fn list_by_owner(&self, owner: &Owner) -> Result<Vec<Subscription>, StoreError> {
        let t = self.lock();
        let dep = owner.deployment.as_str().to_owned();
        Ok(t.by_owner
            .range((dep.clone(), owner.user_id, min_id())..)
            .take_while(|((d, u, _), _)| *d == dep && *u == owner.user_id)
            .map(|(_, s)| s.clone())
            .collect())
    }

    async fn delete(
        &self,
        owner: &Owner,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        let mut t = self.lock();
        let removed = t.by_owner.remove(&owner_key(owner, id));
        if let Some(s) = &removed {
            t.by_event.remove(&(
                s.owner.deployment.as_str().to_owned(),
                s.event_id.clone(),
                s.id.clone(),
            ));
        }
        Ok(removed)
    }

    async fn list_by_owner_event(
        &self,
        owner: &Owner,
        event_id: &str,
    ) -> Result<Vec<SubscriptionRef>, StoreError> {
        let t = self.lock();
        let dep = owner.deployment.as_str().to_owned();
        Ok(t.by_owner
            .range((dep.clone(), owner.user_id, min_id())..)
            .take_while(|((d, u, _), _)| *d == dep && *u == owner.user_id)
            .filter(|(_, s)| s.event_id == event_id && s.active)
            .map(|((_, _, id), s)| SubscriptionRef {
                id: id.clone(),
                owner: s.owner.clone(),
            })
            .collect())
    }

    async fn page_by_event(
        &self,
        deployment: &Deployment,
        event_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<SubscriptionRef>, StoreError> {
        let start = match cursor {
            None => None,
            Some(c) => Some(SubscriptionId::parse(c).map_err(|_| StoreError::BadCursor)?),
        };
        let t = self.lock();
        let (dep, ev) = (deployment.as_str().to_owned(), event_id.to_owned());
        let from = (
            dep.clone(),
            ev.clone(),
            start.clone().unwrap_or_else(min_id),
        );
        let mut items = Vec::new();
        let mut more = false;
        for ((d, e, id), owner) in t.by_event.range(from..) {
            if *d != dep || *e != ev {
                break;
            }
            if Some(id) == start.as_ref() {
                continue;
            }
            if items.len() == limit.max(1) {
                more = true;
                break;
            }
            items.push(SubscriptionRef {
                id: id.clone(),
                owner: owner.clone(),
            });
        }
        let next = if more {
            items.last().map(|r| r.id.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }
}

fn min_id() -> SubscriptionId {
    SubscriptionId::parse("000000000000000000000000").expect("valid id")
}

/// Idempotency keys in a map: `(deployment, key)` to the event holding it, the Unix
/// second its claim ends, whether it is done, and the attempt holding its lease until when
/// (milliseconds), with the same arithmetic as the DynamoDB adapter (window in seconds,
/// rounded down; a granted claim renews window and lease). One lock makes a claim atomic.
#[derive(Default)]
pub struct MemoryIdempotencyStore {
    claims: Mutex<Claims>,
}

struct Held {
    event_uid: String,
    /// Unix seconds.
    expires_at: i64,
    done: bool,
    attempt: String,
    lease_until: crate::model::clock::Millis,
}

#[derive(Default)]
struct Claims {
    by_key: HashMap<(String, String), Held>,
    since_sweep: usize,
}

impl MemoryIdempotencyStore {
    /// Claimed keys, expired ones included until the next sweep.
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Claims> {
        self.claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn claim(
        &self,
        deployment: &Deployment,
        key: &str,
        claimant: &Claimant,
        times: ClaimTimes,
    ) -> Result<Claim, StoreError> {
        let now_secs = times.now.div_euclid(1000);
        let mut claims = self.lock();
        // Forget expired claims now and then, as the table's TTL does.
        claims.since_sweep += 1;
        if claims.since_sweep >= 4096 {
            claims.since_sweep = 0;
            claims.by_key.retain(|_, held| held.expires_at >= now_secs);
        }
        let slot = (deployment.as_str().to_owned(), key.to_owned());
        if let Some(held) = claims.by_key.get(&slot)
            && held.expires_at >= now_secs
        {
            if held.event_uid != claimant.event_uid || held.done {
                return Ok(Claim::Duplicate);
            }
            if held.attempt != claimant.attempt && held.lease_until > times.now {
                return Ok(Claim::InProgress);
            }
        }
        claims.by_key.insert(
            slot,
            Held {
                event_uid: claimant.event_uid.clone(),
                expires_at: times.now.saturating_add(times.window).div_euclid(1000),
                done: false,
                attempt: claimant.attempt.clone(),
                lease_until: times.now.saturating_add(times.lease),
            },
        );
        Ok(Claim::Granted)
    }

    async fn complete(
        &self,
        deployment: &Deployment,
        key: &str,
        event_uid: &str,
    ) -> Result<(), StoreError> {
        let mut claims = self.lock();
        if let Some(held) = claims
            .by_key
            .get_mut(&(deployment.as_str().to_owned(), key.to_owned()))
            && held.event_uid == event_uid
        {
            held.done = true;
        }
        Ok(())
    }
}

type LogKey = (String, UserId, SubscriptionId);

/// Delivery attempts in a map, per subscription (owner and id), each ordered by the same
/// sort key as the DynamoDB table's (time, then delivery id, then attempt number), so
/// both list in the same order and an attempt recorded twice is kept once. `expires_at`
/// is kept to the second, rounded down, as the table keeps it.
///
/// Bounded, so a runner left up for days stays flat: recording an attempt drops that
/// subscription's attempts that have expired (as DynamoDB's TTL would, eventually) and its
/// oldest beyond [`MemoryDeliveryLog::PER_SUBSCRIPTION`]; every
/// [`MemoryDeliveryLog::SWEEP_EVERY`] records, every subscription's expired attempts go.
#[derive(Default)]
pub struct MemoryDeliveryLog {
    attempts: Mutex<HashMap<LogKey, BTreeMap<String, Attempt>>>,
    recorded: AtomicU64,
}

/// Drops a subscription's expired attempts: the oldest first, as the sort key starts
/// with the attempt's time (and retention is the same for all), so this stops at the
/// first one still kept.
fn drop_expired(attempts: &mut BTreeMap<String, Attempt>, now: Millis) {
    while attempts
        .first_key_value()
        .is_some_and(|(_, a)| a.expires_at <= now)
    {
        attempts.pop_first();
    }
}

impl MemoryDeliveryLog {
    /// The most attempts kept per subscription (the newest).
    pub const PER_SUBSCRIPTION: usize = 10_000;
    /// Records between sweeps of the whole log.
    pub const SWEEP_EVERY: u64 = 4_096;

    /// Attempts kept in all.
    pub fn len(&self) -> usize {
        self.lock().values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LogKey, BTreeMap<String, Attempt>>> {
        self.attempts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps `attempt` under its subscription, then drops what that subscription has
    /// beyond its retention and its cap; on every [`Self::SWEEP_EVERY`]th record, every
    /// subscription's expired attempts too.
    fn keep(&self, log: &mut HashMap<LogKey, BTreeMap<String, Attempt>>, mut attempt: Attempt) {
        attempt.expires_at = attempt.expires_at.div_euclid(1000).saturating_mul(1000);
        let now = attempt.at;
        let sweep = self.recorded.fetch_add(1, Ordering::Relaxed) % Self::SWEEP_EVERY
            == Self::SWEEP_EVERY - 1;
        let attempts = log
            .entry(owner_key(
                &attempt.subscription.owner,
                &attempt.subscription.id,
            ))
            .or_default();
        attempts.insert(attempt.sort_key(), attempt);
        drop_expired(attempts, now);
        while attempts.len() > Self::PER_SUBSCRIPTION {
            attempts.pop_first();
        }
        if sweep {
            log.retain(|_, attempts| {
                drop_expired(attempts, now);
                !attempts.is_empty()
            });
        }
    }
}

#[async_trait]
impl DeliveryLog for MemoryDeliveryLog {
    async fn record(&self, attempt: &Attempt) -> Result<(), StoreError> {
        self.keep(&mut self.lock(), attempt.clone());
        Ok(())
    }

    /// The batch's attempts under one lock, kept as they are (not copied).
    async fn record_all(&self, attempts: Vec<Attempt>) -> Result<(), StoreError> {
        let mut log = self.lock();
        for attempt in attempts {
            self.keep(&mut log, attempt);
        }
        Ok(())
    }

    /// Clones only the page's attempts (and the one past it): the walk to the cursor is a
    /// range lookup in the ordered map, not a copy of what comes before.
    async fn page(
        &self,
        subscription: &SubscriptionRef,
        after: Option<&LogCursor>,
        limit: usize,
    ) -> Result<LogPage, StoreError> {
        if after.is_some_and(|c| c.subscription() != &subscription.id) {
            return Err(StoreError::BadCursor);
        }
        if limit == 0 {
            return Ok(page_of(Vec::new(), 0));
        }
        let log = self.lock();
        let Some(attempts) = log.get(&owner_key(&subscription.owner, &subscription.id)) else {
            return Ok(page_of(Vec::new(), limit));
        };
        let older: Box<dyn Iterator<Item = &Attempt>> = match after {
            None => Box::new(attempts.values().rev()),
            Some(c) => Box::new(
                attempts
                    .range::<str, _>((
                        std::ops::Bound::Unbounded,
                        std::ops::Bound::Excluded(c.position()),
                    ))
                    .rev()
                    .map(|(_, a)| a),
            ),
        };
        let read = older.take(limit.saturating_add(1)).cloned().collect();
        Ok(page_of(read, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(sub: u8, at: Millis, expires_at: Millis) -> Attempt {
        Attempt {
            expires_at,
            ..Attempt::example(sub, at)
        }
    }

    #[tokio::test]
    async fn the_log_keeps_its_retention_and_a_cap_per_subscription() {
        let log = MemoryDeliveryLog::default();
        let day = 86_400_000;
        // Two subscriptions, one attempt a minute for two days, kept for a day.
        for i in 0..2 * 24 * 60 {
            let at = 1_700_000_000_000 + i * 60_000;
            log.record(&attempt(1, at, at + day)).await.unwrap();
            log.record(&attempt(2, at, at + day)).await.unwrap();
        }
        assert_eq!(log.len(), 2 * 24 * 60, "a day's worth each, no more");

        // A busy subscription keeps its newest attempts only.
        let log = MemoryDeliveryLog::default();
        let n = MemoryDeliveryLog::PER_SUBSCRIPTION as i64 + 500;
        for i in 0..n {
            log.record(&attempt(3, 1_700_000_000_000 + i, i64::MAX))
                .await
                .unwrap();
        }
        assert_eq!(log.len(), MemoryDeliveryLog::PER_SUBSCRIPTION);
        let sub = attempt(3, 0, 0).subscription;
        let newest = log.page(&sub, None, 1).await.unwrap();
        assert_eq!(newest.attempts[0].at, 1_700_000_000_000 + n - 1);

        // A subscription that stopped getting attempts is swept by the others' records.
        let log = MemoryDeliveryLog::default();
        log.record(&attempt(4, 0, 1_000)).await.unwrap();
        for i in 0..MemoryDeliveryLog::SWEEP_EVERY as i64 {
            log.record(&attempt(5, 10_000 + i, i64::MAX)).await.unwrap();
        }
        let quiet = attempt(4, 0, 0).subscription;
        assert!(
            log.page(&quiet, None, 10)
                .await
                .unwrap()
                .attempts
                .is_empty()
        );
    }
}
