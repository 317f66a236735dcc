//! The delivery log contract: every adapter of `DeliveryLog` must pass it.

use webhooks_core::model::clock::{ManualClock, Millis};
use webhooks_core::model::identity::{Deployment, Owner};
use webhooks_core::model::ids::IdGenerator;
use webhooks_core::model::subscription::SubscriptionRef;
use webhooks_core::ports::delivery_log::{
    Attempt, AttemptOutcome, DeliveryLog, LogCursor, LogPage,
};
use webhooks_core::ports::store::StoreError;

const T0: Millis = 1_700_000_000_000;
const DAY: Millis = 86_400_000;

fn owner(deployment: &str, user_id: u64) -> Owner {
    Owner {
        deployment: Deployment::parse(deployment).unwrap(),
        user_id,
    }
}

/// A failed attempt with every optional field set.
fn attempt(sub: &SubscriptionRef, delivery: &str, number: u32, at: Millis) -> Attempt {
    Attempt {
        subscription: sub.clone(),
        delivery_id: delivery.to_owned(),
        event_id: "assign_task".to_owned(),
        object_id: 123,
        attempt: number,
        outcome: AttemptOutcome::Retrying,
        http_status: Some(503),
        duration_ms: 250,
        error_kind: Some("http_status".to_owned()),
        reason: Some("the receiver answered 503".to_owned()),
        response_body: "busy".to_owned(),
        resource_url: Some("https://hq.example.com/api/v0/tasks/123".to_owned()),
        occurred_at: Some("2023-11-14T22:13:20Z".to_owned()),
        subject: None,
        next_attempt_at: Some(at + 5_000),
        at,
        expires_at: at + 30 * DAY,
    }
}

/// What a list answers, as (delivery id, attempt number).
fn ids(attempts: &[Attempt]) -> Vec<(String, u32)> {
    attempts
        .iter()
        .map(|a| (a.delivery_id.clone(), a.attempt))
        .collect()
}

/// Runs the whole contract against `log`, which must be empty.
pub async fn run(log: &dyn DeliveryLog) {
    let id_gen = IdGenerator::default();
    let clock = ManualClock::at(T0);
    let alice = owner("hq", 1);
    let next_ref = |owner: &Owner| {
        clock.advance(1000);
        SubscriptionRef {
            id: id_gen.next(&clock),
            owner: owner.clone(),
        }
    };
    let sub = next_ref(&alice);
    // The first page of `limit`: its attempts.
    let list = |sub: &SubscriptionRef, limit: usize| {
        let sub = sub.clone();
        async move { log.page(&sub, None, limit).await.unwrap().attempts }
    };
    let page = |sub: &SubscriptionRef, after: Option<LogCursor>, limit: usize| {
        let sub = sub.clone();
        async move { log.page(&sub, after.as_ref(), limit).await.unwrap() }
    };

    // Nothing recorded: nothing listed.
    assert_eq!(list(&sub, 10).await, vec![]);

    // Every field round-trips: all optional fields set, and a full 4 KB body of
    // multi-byte characters.
    let body = format!("{}{}", "é".repeat(1000), "x".repeat(2096));
    assert_eq!(body.len(), 4096);
    let full = Attempt {
        object_id: u64::MAX,
        response_body: body,
        ..attempt(&sub, "msg_full", 1, T0 + 10_000)
    };
    // Every optional field left out, an empty body, a status-less failure.
    let bare = Attempt {
        outcome: AttemptOutcome::GaveUp,
        http_status: None,
        error_kind: None,
        reason: None,
        response_body: String::new(),
        resource_url: None,
        occurred_at: None,
        subject: None,
        next_attempt_at: None,
        duration_ms: 0,
        object_id: 0,
        ..attempt(&sub, "msg_bare", 8, T0 + 20_000)
    };
    // An automatic deletion, with its reason.
    let gone = Attempt {
        outcome: AttemptOutcome::Unsubscribed,
        http_status: Some(410),
        error_kind: Some("http_status".to_owned()),
        reason: Some("the receiver answered 410 Gone; the subscription was deleted".to_owned()),
        response_body: "gone".to_owned(),
        resource_url: None,
        occurred_at: None,
        subject: None,
        next_attempt_at: None,
        ..attempt(&sub, "msg_gone", 2, T0 + 30_000)
    };
    let delivered = Attempt {
        outcome: AttemptOutcome::Delivered,
        http_status: Some(204),
        error_kind: None,
        reason: None,
        response_body: String::new(),
        resource_url: None,
        occurred_at: None,
        subject: None,
        next_attempt_at: None,
        ..attempt(&sub, "msg_ok", 1, T0 + 40_000)
    };
    let failed = Attempt {
        outcome: AttemptOutcome::Failed,
        http_status: None,
        error_kind: Some("timeout".to_owned()),
        reason: Some("no answer within 10 seconds".to_owned()),
        next_attempt_at: None,
        ..attempt(&sub, "msg_failed", 1, T0 + 50_000)
    };
    // Recorded out of order: the list orders them, not the order of recording.
    for a in [&gone, &full, &failed, &bare, &delivered] {
        log.record(a).await.unwrap();
    }
    assert_eq!(
        list(&sub, 10).await,
        vec![
            failed.clone(),
            delivered.clone(),
            gone.clone(),
            bare.clone(),
            full.clone()
        ],
        "every field kept, newest first"
    );

    // `expires_at` is kept to the second (rounded down), as the table's TTL holds it.
    let other = next_ref(&alice);
    let odd = Attempt {
        expires_at: T0 + DAY + 999,
        ..attempt(&other, "msg_odd", 1, T0)
    };
    log.record(&odd).await.unwrap();
    assert_eq!(
        list(&other, 10).await,
        vec![Attempt {
            expires_at: T0 + DAY,
            ..odd.clone()
        }]
    );

    // Retries of one delivery: the later attempt first, also when two share a millisecond.
    let retried = next_ref(&alice);
    for (number, at) in [(1, T0), (3, T0 + 5_000), (2, T0 + 5_000), (4, T0 + 400_000)] {
        log.record(&attempt(&retried, "msg_r", number, at))
            .await
            .unwrap();
    }
    assert_eq!(
        ids(&list(&retried, 10).await),
        vec![
            ("msg_r".to_owned(), 4),
            ("msg_r".to_owned(), 3),
            ("msg_r".to_owned(), 2),
            ("msg_r".to_owned(), 1)
        ]
    );

    // Pages of 2 over 5 records, by cursor: disjoint, in order, and the last one says so.
    let paged = next_ref(&alice);
    let mut newest_first = Vec::new();
    for i in 0..5u32 {
        let a = attempt(
            &paged,
            &format!("msg_{i}"),
            1,
            T0 + Millis::from(i) * 60_000,
        );
        log.record(&a).await.unwrap();
        newest_first.insert(0, a);
    }
    let first = page(&paged, None, 2).await;
    assert_eq!(first.attempts, newest_first[0..2]);
    let cursor = first.next.expect("more after the first page");
    assert_eq!(cursor, LogCursor::after(&newest_first[1]));
    let second = page(&paged, Some(cursor.clone()), 2).await;
    assert_eq!(second.attempts, newest_first[2..4]);
    let third = page(&paged, second.next.clone(), 2).await;
    assert_eq!(
        third,
        LogPage {
            attempts: newest_first[4..5].to_vec(),
            next: None
        },
        "the last page has no next cursor"
    );
    assert_eq!(
        page(&paged, Some(cursor.clone()), 2).await,
        second,
        "a cursor can be used again"
    );
    assert_eq!(
        page(&paged, None, 5).await,
        LogPage {
            attempts: newest_first.clone(),
            next: None
        },
        "exactly one full page: no next cursor"
    );
    let four = page(&paged, None, 4).await;
    assert_eq!(four.attempts, newest_first[0..4]);
    let rest = page(&paged, four.next, 4).await;
    assert_eq!(
        (rest.attempts, rest.next),
        (newest_first[4..5].to_vec(), None)
    );
    assert_eq!(page(&paged, None, 1000).await.attempts, newest_first);
    assert_eq!(
        page(&paged, None, 0).await,
        LogPage {
            attempts: vec![],
            next: None
        },
        "a page of 0 reads nothing"
    );
    assert_eq!(
        page(&paged, Some(LogCursor::after(&newest_first[4])), 2).await,
        LogPage {
            attempts: vec![],
            next: None
        },
        "nothing after the oldest"
    );

    // A cursor is a position, not an offset: attempts recorded after it was issued that
    // are newer do not shift the pages after it, and a position between two records
    // (an attempt that was never recorded) starts at the next older one.
    log.record(&attempt(&paged, "msg_new", 1, T0 + 999_000))
        .await
        .unwrap();
    assert_eq!(
        page(&paged, Some(cursor.clone()), 2).await.attempts,
        newest_first[2..4]
    );
    let between = attempt(&paged, "msg_between", 1, T0 + 150_000);
    assert_eq!(
        page(&paged, Some(LogCursor::after(&between)), 10)
            .await
            .attempts,
        newest_first[2..5],
        "after minute 2:30 come minute 2 and older"
    );
    let newest = page(&paged, None, 1).await;
    assert_eq!(newest.attempts[0].delivery_id, "msg_new");
    let walked = walk(log, &paged, 2).await;
    assert_eq!(walked.len(), 6, "every attempt once");
    assert_eq!(walked[1..], newest_first[..]);

    // A cursor of another subscription is refused, not read against this one.
    assert!(matches!(
        log.page(&sub, Some(&cursor), 2).await,
        Err(StoreError::BadCursor)
    ));

    // Another owner's subscription with the same id (another user, or the same user id in
    // another deployment) has a log of its own: neither sees the other's records.
    let bobs = SubscriptionRef {
        id: paged.id.clone(),
        owner: owner("hq", 2),
    };
    let elsewhere = SubscriptionRef {
        id: paged.id.clone(),
        owner: owner("acme", 1),
    };
    assert_eq!(list(&bobs, 10).await, vec![]);
    assert_eq!(list(&elsewhere, 10).await, vec![]);
    let bob_attempt = attempt(&bobs, "msg_bob", 1, T0 + 999_000);
    let elsewhere_attempt = attempt(&elsewhere, "msg_acme", 1, T0 + 999_000);
    log.record(&bob_attempt).await.unwrap();
    log.record(&elsewhere_attempt).await.unwrap();
    assert_eq!(list(&bobs, 10).await, vec![bob_attempt]);
    assert_eq!(list(&elsewhere, 10).await, vec![elsewhere_attempt]);
    assert_eq!(
        list(&paged, 10).await[1..],
        newest_first[..],
        "other owners' records never show up"
    );
    let bobs_page = page(&bobs, Some(LogCursor::after(&newest_first[0])), 10).await;
    assert_eq!(
        bobs_page.attempts,
        vec![],
        "a cursor names a position, never another owner's records"
    );

    // Other subscriptions of the same owner are separate too, and an unknown one is empty.
    assert_eq!(list(&other, 10).await.len(), 1);
    assert_eq!(list(&retried, 10).await.len(), 4);
    assert_eq!(list(&sub, 10).await.len(), 5);
    assert_eq!(list(&next_ref(&alice), 10).await, vec![]);

    // Many at once (a batch's lines): more than one write request's worth, over two
    // subscriptions, the same attempt twice (a job handed over twice in one batch): each
    // attempt is kept once, as written.
    let (one, two) = (next_ref(&alice), next_ref(&owner("hq", 2)));
    let mut batch: Vec<Attempt> = (0..40)
        .map(|n| {
            attempt(
                if n % 2 == 0 { &one } else { &two },
                &format!("msg_b{n}"),
                1,
                T0 + n * 1000,
            )
        })
        .collect();
    batch.push(batch[0].clone());
    log.record_all(batch.clone()).await.unwrap();
    let mut expected: Vec<Attempt> = batch[..40]
        .iter()
        .filter(|a| a.subscription == one)
        .cloned()
        .collect();
    expected.reverse();
    assert_eq!(list(&one, 100).await, expected);
    assert_eq!(list(&two, 100).await.len(), 20);
    log.record_all(Vec::new()).await.unwrap();
}

/// Every attempt of `sub`, newest first, following the cursors with pages of `limit`.
pub async fn walk(log: &dyn DeliveryLog, sub: &SubscriptionRef, limit: usize) -> Vec<Attempt> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = log.page(sub, after.as_ref(), limit).await.unwrap();
        assert!(page.attempts.len() <= limit);
        all.extend(page.attempts);
        match page.next {
            Some(next) => after = Some(next),
            None => return all,
        }
    }
}
