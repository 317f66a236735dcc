//! The idempotency contract: every adapter of `IdempotencyStore` must pass it.

use webhooks_core::model::clock::Millis;
use webhooks_core::model::identity::Deployment;
use webhooks_core::ports::idempotency::{
    Claim, ClaimTimes, Claimant, IDEMPOTENCY_WINDOW_MILLIS, IdempotencyStore,
};

const T0: Millis = 1_700_000_000_123;
const W: Millis = IDEMPOTENCY_WINDOW_MILLIS;
/// The lease the suite claims with.
pub const LEASE: Millis = 120_000;

fn deployment(name: &str) -> Deployment {
    Deployment::parse(name).unwrap()
}

pub fn claimant(event_uid: &str, attempt: &str) -> Claimant {
    Claimant {
        event_uid: event_uid.to_owned(),
        attempt: attempt.to_owned(),
    }
}

pub fn times(now: Millis) -> ClaimTimes {
    ClaimTimes {
        now,
        window: W,
        lease: LEASE,
    }
}

/// Runs the whole contract against `store`, which must be empty.
pub async fn run(store: &dyn IdempotencyStore) {
    use Claim::{Duplicate, Granted, InProgress};
    let hq = deployment("hq");
    let acme = deployment("acme");
    // `uid/attempt`: the event and its attempt.
    let claim = |d: &Deployment, key: &str, who: &str, now: Millis| {
        let (d, key) = (d.clone(), key.to_owned());
        let (uid, attempt) = who.split_once('/').unwrap();
        let who = claimant(uid, attempt);
        async move { store.claim(&d, &key, &who, times(now)).await.unwrap() }
    };

    // Keys are the producer's: up to 256 characters of anything, '#' and non-ASCII too.
    let long_key: String = "task-123#assign/2026-11-27T20:00:00Z|é€"
        .chars()
        .cycle()
        .take(256)
        .collect();
    assert_eq!(long_key.chars().count(), 256);

    for key in ["task-123-assign", long_key.as_str()] {
        assert_eq!(
            claim(&hq, key, "e1/a1", T0).await,
            Granted,
            "the first claim holds the key"
        );
        assert_eq!(
            claim(&hq, key, "e1/a1", T0 + 1000).await,
            Granted,
            "the attempt holding the lease claims again (and renews it)"
        );
        assert_eq!(
            claim(&hq, key, "e1/a2", T0 + 2000).await,
            InProgress,
            "another copy of the same event while the lease is live"
        );
        assert_eq!(
            claim(&hq, key, "e1/a2", T0 + 1000 + LEASE - 1).await,
            InProgress,
            "up to the last millisecond of the lease"
        );
        assert_eq!(
            claim(&hq, key, "e2/b1", T0 + 2000).await,
            Duplicate,
            "another event within the window"
        );
        assert_eq!(
            claim(&hq, key, "e1/a3", T0 + 1000 + LEASE).await,
            Granted,
            "the same event takes a pending claim over once the lease has ended (a retry after a crash)"
        );
        assert_eq!(
            claim(&hq, key, "e1/a1", T0 + 1000 + LEASE + 1000).await,
            InProgress,
            "the attempt that lost its lease is now the other copy"
        );
        assert_eq!(
            claim(&hq, key, "e2/b1", T0 + W - 1000).await,
            Duplicate,
            "another event just before the window ends, lease or not"
        );
        assert_eq!(
            claim(&acme, key, "e2/b1", T0 + 2000).await,
            Granted,
            "the same key in another deployment is another key"
        );
        assert_eq!(
            claim(&acme, key, "e1/a1", T0 + 3000).await,
            Duplicate,
            "and is held there by its own event"
        );

        // After the window (of the last granted claim), another event takes the key.
        let later = T0 + 1000 + LEASE + W + 2000;
        assert_eq!(
            claim(&hq, key, "e2/b2", later).await,
            Granted,
            "another event after the window"
        );
        assert_eq!(
            claim(&hq, key, "e1/a9", later + 1000 + LEASE).await,
            Duplicate,
            "the old holder lost it"
        );
        assert_eq!(
            claim(&hq, key, "e2/b2", later + 2000).await,
            Granted,
            "the new holder keeps it"
        );
    }

    // Done: once the holder's fan-out finished, nobody claims the key, not even the holder
    // (its message delivered again after it finished), lease or not.
    assert_eq!(claim(&hq, "done-key", "e6/a1", T0).await, Granted);
    store.complete(&hq, "done-key", "e6").await.unwrap();
    for (who, at) in [
        ("e6/a1", T0 + 1000),
        ("e6/a2", T0 + 1000),
        ("e6/a2", T0 + LEASE + 1000),
        ("e7/a1", T0 + 1000),
    ] {
        assert_eq!(
            claim(&hq, "done-key", who, at).await,
            Duplicate,
            "{who} after the fan-out finished"
        );
    }
    store.complete(&hq, "done-key", "e7").await.unwrap(); // not the holder: changes nothing
    assert_eq!(
        claim(&hq, "done-key", "e7/a1", T0 + W + 2000).await,
        Granted,
        "the window ends for done keys too"
    );
    assert_eq!(
        claim(&hq, "done-key", "e7/a2", T0 + W + 2000 + LEASE).await,
        Granted,
        "and the new holder's claim is pending"
    );
    store.complete(&acme, "never-claimed", "e8").await.unwrap();
    assert_eq!(
        claim(&acme, "never-claimed", "e8/a1", T0).await,
        Granted,
        "completing an unknown key creates nothing"
    );

    // Keys that merely share a prefix, or differ by case, are different keys.
    assert_eq!(claim(&hq, "task-123-assig", "e3/a1", T0).await, Granted);
    assert_eq!(claim(&hq, "TASK-123-ASSIGN", "e4/a1", T0).await, Granted);
    assert_eq!(claim(&hq, "task-123-assign#", "e5/a1", T0).await, Granted);

    // Copies racing for a fresh key: one is granted, every other one is in progress.
    let answers = futures::future::join_all((0..8).map(|i| {
        let (hq, attempt) = (&hq, format!("r/{i}"));
        async move { claim(hq, "raced", &attempt, T0).await }
    }))
    .await;
    assert_eq!(
        answers.iter().filter(|a| **a == Granted).count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|a| **a == InProgress).count(),
        7,
        "{answers:?}"
    );
}
