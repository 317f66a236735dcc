//! The fan-out stage on in-memory adapters: who gets a job, poison messages, crashes and
//! replays, two copies of a keyed event at once (also with the idempotency table on
//! moto), an event with 10,000 matching subscriptions, and reads that follow the audience.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use serde_json::json;
use webhooks_core::adapters::aws::dynamodb_idempotency::DynamoIdempotencyStore;
use webhooks_core::adapters::memory::MemoryIdempotencyStore;
use webhooks_core::model::event::example;
use webhooks_core::model::job::DeliveryJob;
use webhooks_core::ports::idempotency::IdempotencyStore;
use webhooks_core::ports::queue::QueueReceiver;
use webhooks_core::stages::batch::BatchHandler;
use webhooks_core::stages::fanout::{
    AUDIENCE_CONCURRENCY, FanOutSettings, Outcome, PARKED_REASON_ATTRIBUTE,
};
use webhooks_tests::counting::{AfterClaims, FailingAfter};
use webhooks_tests::fanout_kit::{Kit, drain, drain_jobs, message};
use webhooks_tests::lambda_events::sqs_event;
use webhooks_tests::moto;

fn event_body(
    deployment: &str,
    event_id: &str,
    object_id: u64,
    visible_to: serde_json::Value,
) -> String {
    example(deployment, event_id, object_id, visible_to).to_string()
}

#[tokio::test]
async fn only_visible_owners_of_the_deployment_and_event_get_jobs() {
    let kit = Kit::new(FanOutSettings::default());
    let u1 = kit.subscribe("hq", 1, "assign_task").await;
    let _u2 = kit.subscribe("hq", 2, "assign_task").await;
    let u3 = kit.subscribe("hq", 3, "assign_task").await;
    let u1_twice = kit.subscribe("hq", 1, "assign_task").await;
    let _other_event = kit.subscribe("hq", 1, "create_task").await;
    let _other_deployment = kit.subscribe("acme", 1, "assign_task").await;

    let body = event_body("hq", "assign_task", 123, json!([1, 3, 99]));
    let outcome = kit
        .fanout
        .handle_message(&message("m1", body))
        .await
        .unwrap();
    // Visible to three users: one lookup of each user's subscriptions to the event.
    assert_eq!(
        outcome,
        Outcome::FannedOut {
            jobs: 3,
            pages: 3,
            continued: false
        }
    );
    let jobs = drain_jobs(kit.deliveries.as_ref()).await;
    let got: HashSet<_> = jobs.iter().map(|j| j.subscription.id.clone()).collect();
    assert_eq!(
        got,
        HashSet::from([u1.id.clone(), u3.id.clone(), u1_twice.id.clone()])
    );
    let job = jobs.iter().find(|j| j.subscription.id == u1.id).unwrap();
    assert_eq!(
        (job.event_id.as_str(), job.object_id, job.attempt),
        ("assign_task", 123, 1)
    );
    assert_eq!(
        job.resource_url.as_deref(),
        Some("https://hq.example.com/api/v0/objects/123")
    );
    assert_eq!(job.subscription.owner, u1.owner);

    let everyone = event_body("hq", "assign_task", 124, json!("all"));
    kit.fanout
        .handle_message(&message("m2", everyone))
        .await
        .unwrap();
    assert_eq!(drain_jobs(kit.deliveries.as_ref()).await.len(), 4);
}

#[tokio::test]
async fn an_sqs_batch_parks_its_poison_and_delivers_its_neighbours() {
    let kit = Kit::new(FanOutSettings::default());
    let sub = kit.subscribe("hq", 1, "create_quote").await;
    let mut missing_visibility = example("hq", "create_quote", 8, json!("all"));
    missing_visibility
        .as_object_mut()
        .unwrap()
        .remove("visible_to");
    let batch = vec![
        message("good-1", event_body("hq", "create_quote", 7, json!([1]))),
        // The body `sam local generate-event sqs receive-message` puts in its sample.
        message("poison-1", "Hello from SQS!"),
        message("poison-2", missing_visibility.to_string()),
        message("good-2", event_body("hq", "create_quote", 9, json!("all"))),
    ];
    let response = webhooks_sqs_lambda::handle(&kit.fanout, sqs_event(&batch)).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "poison is parked, not failed: {response:?}"
    );

    let jobs = drain_jobs(kit.deliveries.as_ref()).await;
    let objects: HashSet<u64> = jobs.iter().map(|j| j.object_id).collect();
    assert_eq!(objects, HashSet::from([7, 9]));
    assert!(jobs.iter().all(|j| j.subscription.id == sub.id));

    let parked = drain(kit.dead_letters.as_ref()).await;
    let reasons: HashMap<&str, &str> = parked
        .iter()
        .map(|m| {
            (
                m.body.as_str(),
                m.attributes[PARKED_REASON_ATTRIBUTE].as_str(),
            )
        })
        .collect();
    assert_eq!(parked.len(), 2);
    assert!(reasons["Hello from SQS!"].starts_with("the message is not JSON"));
    assert!(reasons[missing_visibility.to_string().as_str()].starts_with("visible_to is required"));
}

#[tokio::test]
async fn a_crashed_fan_out_resends_with_the_same_delivery_ids() {
    // The deliveries queue takes 3 send requests (30 jobs), then fails: a crash half way.
    let failing = std::sync::Mutex::new(None);
    let kit = Kit::with_deliveries(
        FanOutSettings {
            page_size: 40,
            ..Default::default()
        },
        |q| {
            let f = Arc::new(FailingAfter::new(q, 3));
            *failing.lock().unwrap() = Some(f.clone());
            f
        },
    );
    for user in 0..95 {
        kit.subscribe("hq", user, "create_invoice").await;
    }
    let mut event = example("hq", "create_invoice", 55, json!("all"));
    event["idempotency_key"] = json!("invoice-55-created");
    let msg = message("sqs-message-1", event.to_string());

    let first =
        webhooks_sqs_lambda::handle(&kit.fanout, sqs_event(std::slice::from_ref(&msg))).await;
    assert_eq!(
        first.batch_item_failures.len(),
        1,
        "the crash is reported so SQS retries the message"
    );
    let before: Vec<DeliveryJob> = drain_jobs(kit.deliveries.as_ref()).await;
    assert!(
        !before.is_empty() && before.len() < 95,
        "{} jobs went out before the crash",
        before.len()
    );

    // A copy of the event arriving now (the producer sent it twice) finds the crashed
    // attempt's lease still live: it is left on the queue, and sends nothing.
    let copy = message("sqs-message-copy", msg.body.clone());
    let early =
        webhooks_sqs_lambda::handle(&kit.fanout, sqs_event(std::slice::from_ref(&copy))).await;
    assert_eq!(
        early.batch_item_failures.len(),
        1,
        "in progress: retried after the visibility timeout"
    );
    assert!(drain(kit.deliveries.as_ref()).await.is_empty());

    // The message failed until it reached the dead-letter queue, and is redriven: SQS
    // gives it a new message id, but it is the same keyed event. By then (the events
    // queue's visibility timeout, 360 s, at the least) the lease has ended and the
    // redriven message carries on. The queue works again.
    kit.clock.advance(360_000);
    failing
        .lock()
        .unwrap()
        .as_ref()
        .unwrap()
        .ok_batches
        .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    let redriven = message("sqs-message-redriven", msg.body.clone());
    let retry = kit.fanout.handle_message(&redriven).await.unwrap();
    assert_eq!(
        retry,
        Outcome::FannedOut {
            jobs: 95,
            pages: 3,
            continued: false
        }
    );
    let after = drain_jobs(kit.deliveries.as_ref()).await;
    assert_eq!(after.len(), 95);
    let ids_after: HashMap<_, _> = after
        .iter()
        .map(|j| (j.subscription.id.clone(), j.delivery_id.clone()))
        .collect();
    assert_eq!(ids_after.len(), 95);
    let unique_ids: HashSet<_> = ids_after.values().collect();
    assert_eq!(unique_ids.len(), 95, "one delivery id per subscription");
    for job in &before {
        assert_eq!(
            ids_after[&job.subscription.id], job.delivery_id,
            "a resent job keeps its delivery id"
        );
    }

    // The copy left on the queue comes back, and is dropped: the event was fanned out.
    let back = kit.fanout.handle_message(&copy).await.unwrap();
    assert_eq!(back, Outcome::Duplicate);

    // A replay of the event (a new message, same idempotency key) is not fanned out again.
    let replay = kit
        .fanout
        .handle_message(&message("sqs-message-2", event.to_string()))
        .await
        .unwrap();
    assert_eq!(replay, Outcome::Duplicate);
    assert!(drain(kit.deliveries.as_ref()).await.is_empty());

    // After 24 hours the key is free again.
    kit.clock.advance(24 * 3600 * 1000 + 1000);
    let later = kit
        .fanout
        .handle_message(&message("sqs-message-3", event.to_string()))
        .await
        .unwrap();
    assert!(matches!(later, Outcome::FannedOut { jobs: 95, .. }));
}

/// Two copies of one keyed event (a producer that sent it twice) in two Lambda batches
/// at the same moment. Both reach their claim before either sends a job (the deliveries
/// queue waits for two answered claims), so without the lease both would send every job.
async fn two_copies_at_once_send_their_jobs_once(idempotency: Arc<dyn IdempotencyStore>) {
    let kit = Kit::build(
        FanOutSettings {
            page_size: 10,
            ..Default::default()
        },
        idempotency,
        |q, answered| {
            Arc::new(AfterClaims {
                inner: q,
                answered,
                claims: 2,
            })
        },
    );
    for user in 0..25 {
        kit.subscribe("hq", user, "create_invoice").await;
    }
    let mut event = example("hq", "create_invoice", 56, json!("all"));
    event["idempotency_key"] = json!("invoice-56-created");
    let body = event.to_string();
    let (a, b) = (message("copy-a", body.clone()), message("copy-b", body));

    let (failed_a, failed_b) = tokio::join!(
        kit.fanout.handle_batch(std::slice::from_ref(&a)),
        kit.fanout.handle_batch(std::slice::from_ref(&b)),
    );
    let left: Vec<String> = failed_a.into_iter().chain(failed_b).collect();
    assert_eq!(left.len(), 1, "one copy is left on the queue: {left:?}");
    let jobs = drain_jobs(kit.deliveries.as_ref()).await;
    let subscriptions: HashSet<_> = jobs.iter().map(|j| j.subscription.id.clone()).collect();
    assert_eq!(
        (jobs.len(), subscriptions.len()),
        (25, 25),
        "every job sent once"
    );

    // The copy left on the queue comes back after the visibility timeout and is dropped.
    kit.clock.advance(360_000);
    let back = if left[0] == a.message_id { &a } else { &b };
    assert_eq!(
        kit.fanout.handle_message(back).await.unwrap(),
        Outcome::Duplicate
    );
    assert!(drain(kit.deliveries.as_ref()).await.is_empty());
}

#[tokio::test]
async fn two_copies_at_once_send_their_jobs_once_in_memory() {
    two_copies_at_once_send_their_jobs_once(Arc::new(MemoryIdempotencyStore::default())).await;
}

#[tokio::test]
async fn two_copies_at_once_send_their_jobs_once_on_dynamodb() {
    let sdk = moto::sdk_config().await;
    let store = DynamoIdempotencyStore::from_sdk(&sdk, webhooks_tests::unique("idempotency"));
    store.ensure_table().await.unwrap();
    two_copies_at_once_send_their_jobs_once(Arc::new(store)).await;
}

#[tokio::test]
async fn ten_thousand_subscriptions_fan_out_through_continuations() {
    let kit = Kit::new(FanOutSettings {
        page_size: 1000,
        max_pages_per_message: 3,
        ..Default::default()
    });
    for user in 0..10_000u64 {
        kit.subscribe("hq", user % 2500, "update_request_status")
            .await;
    }
    kit.subscribe("hq", 1, "create_request").await;
    kit.counts.reset();

    let body = event_body("hq", "update_request_status", 1, json!("all"));
    let mut pending = vec![message("first", body)];
    let (mut messages, mut continued) = (0, 0);
    while let Some(msg) = pending.pop() {
        messages += 1;
        match kit.fanout.handle_message(&msg).await.unwrap() {
            Outcome::FannedOut {
                continued: true, ..
            } => continued += 1,
            Outcome::FannedOut { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        pending.extend(drain(kit.events.as_ref() as &dyn QueueReceiver).await);
    }
    assert_eq!(
        (messages, continued),
        (4, 3),
        "10 pages of 1000, 3 pages per message"
    );
    let jobs = drain_jobs(kit.deliveries.as_ref()).await;
    let unique: HashSet<_> = jobs.iter().map(|j| j.delivery_id.clone()).collect();
    assert_eq!(
        (jobs.len(), unique.len()),
        (10_000, 10_000),
        "every subscription once, nothing lost"
    );
    let (queries, sends, sent, claims) = kit.counts.get();
    assert_eq!((queries, sends, sent, claims), (10, 1000, 10_000, 0));
}

/// The jobs (subscription and delivery id) an event gave, sorted.
fn job_ids(jobs: &[DeliveryJob]) -> Vec<(String, String)> {
    let mut ids: Vec<_> = jobs
        .iter()
        .map(|j| (j.subscription.id.to_string(), j.delivery_id.clone()))
        .collect();
    ids.sort();
    ids
}

/// A kit's store reads so far: (audience lookups, pages of the type's index).
fn reads(kit: &Kit) -> (usize, usize) {
    (
        kit.counts.audience_queries.load(SeqCst),
        kit.counts.queries.load(SeqCst),
    )
}

#[tokio::test]
async fn an_event_for_a_few_users_reads_their_subscriptions_only_and_sends_the_same_jobs() {
    let audience = Kit::new(FanOutSettings::default());
    let catalogue = Kit::new(FanOutSettings {
        audience_limit: 0,
        ..Default::default()
    });
    // 3,000 subscriptions to one type over 300 users, the same in both stores.
    for sub in audience.spread("hq", "assign_task", 3000, 300) {
        audience.store.put(&sub).await.unwrap();
        catalogue.store.put(&sub).await.unwrap();
    }
    let excluded = audience
        .store
        .list_by_owner_event(&webhooks_tests::fanout_kit::owner("hq", 7), "assign_task")
        .await
        .unwrap()[0]
        .id
        .clone();
    let mut event = example("hq", "assign_task", 42, json!([7, 8, 9, 100_000]));
    event["event_uid"] = json!("evt_fixed");
    event["exclude_subscription"] = json!(excluded.to_string());
    for kit in [&audience, &catalogue] {
        kit.counts.reset();
        kit.fanout
            .handle_message(&message("m", event.to_string()))
            .await
            .unwrap();
    }

    let from_audience = drain_jobs(audience.deliveries.as_ref()).await;
    let from_catalogue = drain_jobs(catalogue.deliveries.as_ref()).await;
    assert_eq!(
        from_audience.len(),
        29,
        "10 each of users 7, 8, 9, one excluded"
    );
    assert_eq!(job_ids(&from_audience), job_ids(&from_catalogue));
    assert_eq!(
        reads(&audience),
        (4, 0),
        "one lookup per user listed, no index page"
    );
    assert_eq!(reads(&catalogue), (0, 1));

    // A list longer than the limit, or "all", reads every subscription to the type.
    let many: Vec<u64> = (0..=FanOutSettings::default().audience_limit as u64).collect();
    let subscribed = many.iter().filter(|&&user| user < 300).count();
    audience.counts.reset();
    for (id, visible_to) in [("long", json!(many)), ("all", json!("all"))] {
        let body = event_body("hq", "assign_task", 43, visible_to);
        audience
            .fanout
            .handle_message(&message(id, body))
            .await
            .unwrap();
    }
    assert_eq!(reads(&audience), (0, 2));
    assert_eq!(
        drain_jobs(audience.deliveries.as_ref()).await.len(),
        10 * subscribed + 3000
    );
}

#[tokio::test]
async fn a_full_batch_of_narrow_events_reads_its_users_keys_and_not_the_types_index() {
    let kit = Kit::new(FanOutSettings::default());
    // 100,000 subscriptions to one type over 25,000 users, 4 each.
    for sub in kit.spread("hq", "assign_task", 100_000, 25_000) {
        kit.store.put(&sub).await.unwrap();
    }
    // A full batch (the template's BatchSize), each event visible to one different user.
    let users: Vec<u64> = (0..100).map(|n| n * 250 + 7).collect();
    let messages: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(n, &user)| {
            let body = event_body("hq", "assign_task", 1000 + n as u64, json!([user]));
            message(&format!("m{n}"), body)
        })
        .collect();
    kit.counts.reset();
    let answer = webhooks_sqs_lambda::handle(&kit.fanout, sqs_event(&messages)).await;
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(
        reads(&kit),
        (100, 0),
        "one lookup per audience user, no page of the type's index"
    );
    assert_eq!(
        kit.counts.audience_peak.load(SeqCst),
        AUDIENCE_CONCURRENCY,
        "the lookups run together, a bounded number at once"
    );
    // Each event reached its user's four subscriptions, and nobody else's.
    let jobs = drain_jobs(kit.deliveries.as_ref()).await;
    assert_eq!(jobs.len(), 400);
    let mut owners: HashMap<u64, Vec<u64>> = HashMap::new();
    for job in &jobs {
        owners
            .entry(job.object_id)
            .or_default()
            .push(job.subscription.owner.user_id);
    }
    for (n, &user) in users.iter().enumerate() {
        assert_eq!(owners[&(1000 + n as u64)], vec![user; 4]);
    }

    // A full batch of events naming ten users each: 1,000 users, still one lookup each.
    let messages: Vec<_> = (0..100u64)
        .map(|n| {
            let named: Vec<u64> = (0..10).map(|k| n * 10 + k).collect();
            let body = event_body("hq", "assign_task", 2000 + n, json!(named));
            message(&format!("w{n}"), body)
        })
        .collect();
    kit.counts.reset();
    let answer = webhooks_sqs_lambda::handle(&kit.fanout, sqs_event(&messages)).await;
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(reads(&kit), (1000, 0));
    assert_eq!(kit.counts.audience_peak.load(SeqCst), AUDIENCE_CONCURRENCY);
    assert_eq!(drain_jobs(kit.deliveries.as_ref()).await.len(), 4000);
}

#[tokio::test]
async fn a_batch_reads_each_event_type_once_and_shares_send_requests() {
    let kit = Kit::new(FanOutSettings::default());
    let single = Kit::new(FanOutSettings::default());
    let types = [
        "assign_task",
        "create_task",
        "create_quote",
        "create_request",
    ];
    for (n, event_id) in types.iter().enumerate() {
        let sub = kit.subscribe("hq", n as u64, event_id).await;
        single.store.put(&sub).await.unwrap();
    }
    // Ten events of four types, one subscriber each.
    let messages: Vec<_> = (0..10u64)
        .map(|n| {
            let event_id = types[n as usize % types.len()];
            message(
                &format!("m{n}"),
                event_body("hq", event_id, n + 1, json!("all")),
            )
        })
        .collect();
    let mut one_by_one = Vec::new();
    for m in &messages {
        single.fanout.handle_message(m).await.unwrap();
        one_by_one.extend(drain_jobs(single.deliveries.as_ref()).await);
    }

    kit.counts.reset();
    let failed = webhooks_sqs_lambda::handle(&kit.fanout, sqs_event(&messages)).await;
    assert!(failed.batch_item_failures.is_empty());
    let jobs = drain_jobs(kit.deliveries.as_ref()).await;
    assert_eq!(jobs.len(), 10);
    let (queries, sends, sent, _) = kit.counts.get();
    assert_eq!(queries, types.len(), "one index read per event type");
    assert_eq!(
        (sends, sent),
        (1, 10),
        "ten jobs of ten events, one send request"
    );
    // The same jobs and delivery ids as the events fanned out one at a time.
    let mut batched: Vec<_> = jobs
        .iter()
        .map(|j| (j.event_id.clone(), j.delivery_id.clone()))
        .collect();
    batched.sort();
    let mut single: Vec<_> = one_by_one
        .iter()
        .map(|j| (j.event_id.clone(), j.delivery_id.clone()))
        .collect();
    single.sort();
    assert_eq!(batched, single);
}

#[tokio::test]
async fn a_send_that_fails_retries_only_the_events_whose_jobs_did_not_go() {
    // The deliveries queue takes one send request, then fails.
    let failing = Arc::new(std::sync::Mutex::new(None));
    let kit = Kit::with_deliveries(FanOutSettings::default(), {
        let failing = failing.clone();
        move |inner| {
            let f = Arc::new(FailingAfter::new(inner, 1));
            *failing.lock().unwrap() = Some(f.clone());
            f
        }
    });
    // Event a has 10 subscribers (one full request), event b has 5.
    for user in 0..10 {
        kit.subscribe("hq", user, "assign_task").await;
    }
    for user in 0..5 {
        kit.subscribe("hq", user, "create_task").await;
    }
    let messages = vec![
        message("a", event_body("hq", "assign_task", 1, json!("all"))),
        message("b", event_body("hq", "create_task", 2, json!("all"))),
    ];
    let answer = webhooks_sqs_lambda::handle(&kit.fanout, sqs_event(&messages)).await;
    let failed: Vec<_> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        failed,
        vec!["b".to_owned()],
        "a's ten jobs went out in the first request"
    );
    assert_eq!(drain_jobs(kit.deliveries.as_ref()).await.len(), 10);
}

/// An access check that always answers 500.
struct Answering500;

#[async_trait::async_trait]
impl webhooks_core::ports::http::HttpSender for Answering500 {
    async fn post(
        &self,
        _: &webhooks_core::ports::http::OutgoingRequest,
    ) -> Result<webhooks_core::ports::http::HttpResponse, webhooks_core::ports::http::SendError>
    {
        Ok(webhooks_core::ports::http::HttpResponse {
            status: 500,
            retry_after: None,
            body: String::new(),
        })
    }
}

#[tokio::test]
async fn a_check_event_without_an_access_check_is_parked_with_the_reason() {
    let kit = Kit::new(FanOutSettings::default());
    kit.subscribe("hq", 1, "create_quote").await;
    let outcome = kit
        .fanout
        .handle_message(&message(
            "m-1",
            event_body("hq", "create_quote", 7, json!("check")),
        ))
        .await
        .unwrap();
    assert!(
        matches!(outcome, Outcome::Parked(ref r) if r.contains("WEBHOOKS_ACCESS_CHECK_URL")),
        "{outcome:?}"
    );
    assert!(drain_jobs(kit.deliveries.as_ref()).await.is_empty());
    let parked = drain(kit.dead_letters.as_ref()).await;
    assert!(parked[0].attributes[PARKED_REASON_ATTRIBUTE].contains("access check"));
}

#[tokio::test]
async fn a_check_event_whose_questions_keep_failing_is_parked_after_the_schedule() {
    use webhooks_core::model::event::Event;
    let mut kit = Kit::new(FanOutSettings {
        check_retry: webhooks_core::policy::retry::RetryPolicy {
            schedule: vec![std::time::Duration::from_secs(1)],
            jitter: 0.0,
            ..Default::default()
        },
        ..FanOutSettings::default()
    });
    kit.fanout.access = Some(Arc::new(webhooks_core::stages::access::AccessCheck::new(
        "https://product.example/access".into(),
        Arc::new(webhooks_core::ports::secret::GivenSecret::new(format!(
            "whsec_{}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [1u8; 32])
        ))),
        Arc::new(Answering500),
        Arc::new(kit.clock.clone()),
    )));
    kit.subscribe("hq", 1, "create_quote").await;
    kit.subscribe("hq", 2, "create_quote").await;
    let first = kit
        .fanout
        .handle_message(&message(
            "m-1",
            event_body("hq", "create_quote", 7, json!("check")),
        ))
        .await
        .unwrap();
    assert!(
        matches!(first, Outcome::FannedOut { jobs: 0, .. }),
        "{first:?}"
    );
    // Asked again alone, after the schedule's delay, in a message of its own.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = drain(kit.events.as_ref()).await;
    assert_eq!(again.len(), 1);
    let retry = Event::from_message(&again[0].body, &Default::default(), "x", 0).unwrap();
    let state = retry.check_retry.clone().expect("where it stopped");
    assert_eq!((state.users, state.attempt), ([1, 2].into(), 1));
    assert_eq!(state.reason, "the access check answered HTTP 500");
    assert_eq!(
        retry.event_uid, "m-1",
        "the same event, so the same delivery ids"
    );

    let second = kit.fanout.handle_message(&again[0]).await.unwrap();
    assert!(
        matches!(second, Outcome::FannedOut { jobs: 0, .. }),
        "{second:?}"
    );
    assert!(drain(kit.events.as_ref()).await.is_empty());
    assert!(
        drain_jobs(kit.deliveries.as_ref()).await.is_empty(),
        "nobody on a guess"
    );
    let parked = drain(kit.dead_letters.as_ref()).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].attributes[PARKED_REASON_ATTRIBUTE],
        "the access check did not answer after 2 questions: the access check answered HTTP 500"
    );
}
