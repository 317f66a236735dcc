//! The idempotency contract: every adapter of `IdempotencyStore` must pass it.

use webhooks_core::clock::Millis;
use webhooks_core::idempotency::{IDEMPOTENCY_WINDOW_MILLIS, IdempotencyStore};
use webhooks_core::identity::Deployment;

const T0: Millis = 1_700_000_000_123;
const W: Millis = IDEMPOTENCY_WINDOW_MILLIS;

fn deployment(name: &str) -> Deployment {
    Deployment::parse(name).unwrap()
}

/// Runs the whole contract against `store`, which must be empty.
pub async fn run(store: &dyn IdempotencyStore) {
    let hq = deployment("hq");
    let acme = deployment("acme");
    let claim = |d: &Deployment, key: &str, uid: &str, now: Millis| {
        let (d, key, uid) = (d.clone(), key.to_owned(), uid.to_owned());
        async move { store.claim(&d, &key, &uid, now, W).await.unwrap() }
    };

    // Keys are the producer's: up to 256 characters of anything, '#' and non-ASCII too.
    let long_key: String = "task-123#assign/2026-11-27T20:00:00Z|é€"
        .chars()
        .cycle()
        .take(256)
        .collect();
    assert_eq!(long_key.chars().count(), 256);

    for key in ["task-123-assign", long_key.as_str()] {
        assert!(
            claim(&hq, key, "e1", T0).await,
            "the first claim holds the key"
        );
        assert!(
            claim(&hq, key, "e1", T0 + 1000).await,
            "the holder claims again (a retried fan-out)"
        );
        assert!(
            !claim(&hq, key, "e2", T0 + 2000).await,
            "another event within the window"
        );
        assert!(
            !claim(&hq, key, "e2", T0 + W - 1000).await,
            "another event just before the window ends"
        );
        assert!(
            claim(&acme, key, "e2", T0 + 2000).await,
            "the same key in another deployment is another key"
        );
        assert!(
            !claim(&acme, key, "e1", T0 + 3000).await,
            "and is held there by its own event"
        );

        // After the window (of the last claim by the holder), another event takes the key.
        let later = T0 + 1000 + W + 2000;
        assert!(
            claim(&hq, key, "e2", later).await,
            "another event after the window"
        );
        assert!(
            !claim(&hq, key, "e1", later + 1000).await,
            "the old holder lost it"
        );
        assert!(
            claim(&hq, key, "e2", later + 2000).await,
            "the new holder keeps it"
        );
    }

    // Done: once the holder's fan-out finished, nobody claims the key, not even the holder
    // (its message delivered again after it finished).
    assert!(claim(&hq, "done-key", "e6", T0).await);
    store.complete(&hq, "done-key", "e6").await.unwrap();
    assert!(
        !claim(&hq, "done-key", "e6", T0 + 1000).await,
        "a finished event does not run again"
    );
    assert!(
        !claim(&hq, "done-key", "e7", T0 + 1000).await,
        "nor does another"
    );
    store.complete(&hq, "done-key", "e7").await.unwrap(); // not the holder: changes nothing
    assert!(
        claim(&hq, "done-key", "e7", T0 + W + 2000).await,
        "the window ends for done keys too"
    );
    assert!(
        claim(&hq, "done-key", "e7", T0 + W + 3000).await,
        "and the new holder's claim is pending"
    );
    store.complete(&acme, "never-claimed", "e8").await.unwrap();
    assert!(
        claim(&acme, "never-claimed", "e8", T0).await,
        "completing an unknown key creates nothing"
    );

    // Keys that merely share a prefix, or differ by case, are different keys.
    assert!(claim(&hq, "task-123-assig", "e3", T0).await);
    assert!(claim(&hq, "TASK-123-ASSIGN", "e4", T0).await);
    assert!(claim(&hq, "task-123-assign#", "e5", T0).await);
}
