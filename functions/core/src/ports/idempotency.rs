//! The idempotency port: an event's `idempotency_key` is claimed for 24 hours by the
//! first event that carries it. A claim is pending while that event fans out, and done
//! once it has.
//!
//! Guarantees of every adapter:
//! * Nobody claims a done key, nor a key another event holds, within its window:
//!   [`Claim::Duplicate`].
//! * A claim is held by one *attempt* (one handling of one message) at a time, under a
//!   lease. While the lease is live, another attempt of the same event gets
//!   [`Claim::InProgress`]: two copies of one keyed event handled at the same moment (a
//!   producer that sent it twice, or SQS handing one message over twice) fan out once.
//! * Once the lease has ended, the same event may take the pending claim over
//!   ([`Claim::Granted`]): a fan-out that crashed, retried or redriven, carries on, with the
//!   same delivery ids. The attempt holding the lease may claim again, which renews it.
//! * Claiming is one atomic step: of claimants racing for a key, one is granted.

use async_trait::async_trait;

use crate::model::clock::Millis;
use crate::model::identity::Deployment;
use crate::ports::store::StoreError;

/// How long a key is remembered.
pub const IDEMPOTENCY_WINDOW_MILLIS: Millis = 24 * 3600 * 1000;

/// Who claims: the event, and this attempt at fanning it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimant {
    /// The event's uid: the same for every copy and retry of one event.
    pub event_uid: String,
    /// This attempt's id: different for every handling of a message, also of the same
    /// message handed over twice.
    pub attempt: String,
}

/// How long a claim lasts, from `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimTimes {
    pub now: Millis,
    /// How long the key is remembered ([`IDEMPOTENCY_WINDOW_MILLIS`]).
    pub window: Millis,
    /// How long this attempt holds the claim against other attempts of the same event.
    pub lease: Millis,
}

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This attempt holds the key, pending, until `now + lease`: fan out.
    Granted,
    /// Another attempt of the same event holds a live lease: try again later (leave the
    /// message on the queue).
    InProgress,
    /// Another event holds the key, or this event already finished: drop it.
    Duplicate,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` of `deployment` for `claimant` until `now + window`, as pending, with
    /// the lease `now + lease`. [`Claim::Granted`] for the first claim, a claim after the
    /// window passed, the same event after the lease of another attempt ended, or the
    /// attempt holding the lease (each of which renews the window and the lease);
    /// [`Claim::InProgress`] for another attempt of the same event while the lease is
    /// live; [`Claim::Duplicate`] when another event holds the key or this event finished.
    async fn claim(
        &self,
        deployment: &Deployment,
        key: &str,
        claimant: &Claimant,
        times: ClaimTimes,
    ) -> Result<Claim, StoreError>;

    /// Marks the claim of `event_uid` done: from now on the key only answers "duplicate".
    async fn complete(
        &self,
        deployment: &Deployment,
        key: &str,
        event_uid: &str,
    ) -> Result<(), StoreError>;
}
