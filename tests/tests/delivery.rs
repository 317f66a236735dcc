//! The delivery stage against real HTTP receivers on 127.0.0.1: exact bodies and headers,
//! signatures checked by independent implementations, and every outcome (410, timeouts,
//! retries with their delays, giving up, SSRF refusals), with the clock moved by hand.

use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use std::sync::Arc;

use webhooks_core::adapters::aws::dynamodb::DynamoSubscriptionStore;
use webhooks_core::adapters::aws::dynamodb_delivery_log::DynamoDeliveryLog;
use webhooks_core::model::job::DeliveryJob;
use webhooks_core::model::network::{IpRange, NetworkPolicy};
use webhooks_core::model::subscription::ContentType;
use webhooks_core::policy::breaker::BreakerSettings;
use webhooks_core::ports::delivery_log::AttemptOutcome;
use webhooks_tests::delivery_kit::DeliveryKit;
use webhooks_tests::receiver::{Behaviour, Receiver, refused_url};

const WAIT: Duration = Duration::from_secs(5);

fn hex_hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], body: &[u8]) -> String {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn form_deliveries_carry_the_exact_body_and_every_signature() {
    let kit = DeliveryKit::new();
    let receiver = Receiver::start().await;
    let secret = "my-signing-secret";
    let sub = kit
        .subscribe(&receiver.url, ContentType::Form, Some(secret))
        .await;
    let job = kit.job(&sub, 123);
    assert!(kit.run(std::slice::from_ref(&job)).await.is_empty());

    let got = receiver.wait_for(1, WAIT).await;
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.body,
        b"id=123&resource_url=https%3A%2F%2Fhq.example.com%2Fapi%2Fv0%2Ftasks%2F123"
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.header("x-accelo-event"), Some("assign_task"));
    assert_eq!(r.header("webhook-id"), Some(job.delivery_id.as_str()));
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!((ts - kit.clock_secs()).abs() <= 1);

    // GitHub-style signatures, recomputed with RustCrypto's HMAC.
    let sha1 = hex_hmac::<Hmac<sha1::Sha1>>(secret.as_bytes(), &r.body);
    let sha256 = hex_hmac::<Hmac<sha2::Sha256>>(secret.as_bytes(), &r.body);
    assert_eq!(
        r.header("x-hub-signature"),
        Some(format!("sha1={sha1}").as_str())
    );
    assert_eq!(
        r.header("x-hub-signature-256"),
        Some(format!("sha256={sha256}").as_str())
    );

    // Standard Webhooks, verified by the standardwebhooks crate with the whsec_ spelling.
    let whsec = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(secret)
    );
    let verifier = standardwebhooks::Webhook::new(&whsec).unwrap();
    let mut headers = http::HeaderMap::new();
    for (k, v) in &r.headers {
        headers.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    verifier
        .verify(&r.body, &headers)
        .expect("the Standard Webhooks signature verifies");
    assert!(
        verifier.verify(b"id=124", &headers).is_err(),
        "a changed body does not verify"
    );

    let log = kit.log_of(&sub).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].outcome, log[0].http_status, log[0].attempt),
        (AttemptOutcome::Delivered, Some(200), 1)
    );
    assert_eq!(
        log[0].response_body, "",
        "a success's answer is not kept: its log line stays one write unit"
    );
}

/// A generated `whsec_` secret verifies both ways a receiver may try (SPEC section 4):
/// GitHub-style libraries key the `X-Hub-*` HMACs by the secret as shown, a string, and
/// the Standard Webhooks libraries decode its base64 for `webhook-signature`.
#[tokio::test]
async fn a_generated_secret_verifies_as_shown_for_x_hub_and_decoded_for_standard_webhooks() {
    let kit = DeliveryKit::new();
    let receiver = Receiver::start().await;
    let generated = webhooks_core::model::subscription::Secret::generate();
    let shown = generated.expose();
    assert!(shown.starts_with("whsec_"));
    let sub = kit
        .subscribe(&receiver.url, ContentType::Json, Some(shown))
        .await;
    assert!(kit.run(&[kit.job(&sub, 7)]).await.is_empty());
    let r = &receiver.wait_for(1, WAIT).await[0];

    let sha256 = hex_hmac::<Hmac<sha2::Sha256>>(shown.as_bytes(), &r.body);
    let sha1 = hex_hmac::<Hmac<sha1::Sha1>>(shown.as_bytes(), &r.body);
    assert_eq!(
        r.header("x-hub-signature-256"),
        Some(format!("sha256={sha256}").as_str())
    );
    assert_eq!(
        r.header("x-hub-signature"),
        Some(format!("sha1={sha1}").as_str())
    );

    let verifier = standardwebhooks::Webhook::new(shown).unwrap();
    let mut headers = http::HeaderMap::new();
    for (k, v) in &r.headers {
        headers.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    verifier
        .verify(&r.body, &headers)
        .expect("webhook-signature verifies with the secret as shown");
}

#[tokio::test]
async fn json_deliveries_without_a_secret_are_unsigned() {
    let kit = DeliveryKit::new();
    let receiver = Receiver::start().await;
    let sub = kit.subscribe(&receiver.url, ContentType::Json, None).await;
    let mut delete = kit.job(&sub, 9);
    delete.resource_url = None; // delete events carry the id only
    kit.run(&[kit.job(&sub, 8), delete]).await;
    let mut got = receiver.wait_for(2, WAIT).await;
    got.sort_by(|a, b| a.body.cmp(&b.body));
    assert_eq!(
        got[0].body,
        br#"{"id":8,"resource_url":"https://hq.example.com/api/v0/tasks/8"}"#
    );
    assert_eq!(got[1].body, br#"{"id":9}"#);
    for r in &got {
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("x-hub-signature").is_none() && r.header("webhook-signature").is_none());
        assert!(r.header("webhook-id").is_some() && r.header("webhook-timestamp").is_some());
    }
}

#[tokio::test]
async fn gone_deletes_the_subscription_at_once() {
    let kit = DeliveryKit::new();
    let receiver = Receiver::start().await;
    receiver.always(Behaviour::Status(410));
    let sub = kit.subscribe(&receiver.url, ContentType::Form, None).await;
    assert!(kit.run(&[kit.job(&sub, 1)]).await.is_empty());
    assert!(
        kit.current(&sub).await.is_none(),
        "410 deletes the subscription"
    );
    assert!(kit.queue.take().is_empty(), "and nothing is retried");
    let log = kit.log_of(&sub).await;
    assert_eq!(
        (log[0].outcome, log[0].http_status),
        (AttemptOutcome::Unsubscribed, Some(410))
    );
    assert!(log[0].reason.as_deref().unwrap().contains("410 Gone"));

    // A deleted subscription receives nothing more.
    kit.run(&[kit.job(&sub, 2)]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.requests().len(), 1);
}

/// Runs one batch and moves the hand-moved clock past the request limit, as the time a
/// timed-out attempt takes: the next batch starts after it.
async fn run_round(kit: &DeliveryKit, jobs: &[DeliveryJob]) {
    kit.run(jobs).await;
    kit.clock.advance(1_500);
}

#[tokio::test]
async fn timeouts_are_cut_counted_reset_by_a_success_and_unsubscribe_at_the_limit() {
    let kit = DeliveryKit::new(); // 1 s limit, 3 timeouts in a row
    let receiver = Receiver::start().await;
    receiver.script(vec![
        Behaviour::Hang,
        Behaviour::Hang,
        Behaviour::Status(200),
        Behaviour::Hang,
        Behaviour::Hang,
    ]);
    receiver.always(Behaviour::Hang);
    let sub = kit.subscribe(&receiver.url, ContentType::Form, None).await;

    let started = Instant::now();
    run_round(&kit, &[kit.job(&sub, 1)]).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "a hanging receiver is cut at the limit"
    );
    let log = kit.log_of(&sub).await;
    assert_eq!(
        (log[0].outcome, log[0].error_kind.as_deref()),
        (AttemptOutcome::Retrying, Some("timeout"))
    );
    assert!(
        log[0].duration_ms >= 900 && log[0].duration_ms < 4000,
        "{}",
        log[0].duration_ms
    );
    run_round(&kit, &[kit.job(&sub, 2)]).await;
    run_round(&kit, &[kit.job(&sub, 3)]).await; // 200: the row starts again
    run_round(&kit, &[kit.job(&sub, 4)]).await;
    run_round(&kit, &[kit.job(&sub, 5)]).await;
    assert!(
        kit.current(&sub).await.is_some(),
        "two timeouts since the success: below the limit of three"
    );
    kit.queue.take();
    run_round(&kit, &[kit.job(&sub, 6)]).await;
    assert!(
        kit.current(&sub).await.is_none(),
        "the third timeout in a row deletes the subscription"
    );
    assert!(
        kit.queue.take().is_empty(),
        "a deleted subscription is not retried"
    );
    let log = kit.log_of(&sub).await;
    assert_eq!(log[0].outcome, AttemptOutcome::Unsubscribed);
    assert!(
        log[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("3 deliveries in a row took longer than 1 s")
    );
}

/// Ten jobs to one receiver that stalls are one timeout, not ten; the limit counts
/// rounds. On the in-memory adapters and on DynamoDB (moto) alike.
async fn concurrent_timeouts_count_once_per_round(kit: DeliveryKit) {
    let receiver = Receiver::start().await;
    receiver.always(Behaviour::Hang);
    let sub = kit.subscribe(&receiver.url, ContentType::Form, None).await;
    let batch = |round: u64| -> Vec<DeliveryJob> {
        (0..10).map(|i| kit.job(&sub, round * 100 + i)).collect()
    };
    run_round(&kit, &batch(1)).await;
    assert_eq!(receiver.requests().len(), 10);
    assert!(
        kit.current(&sub).await.is_some(),
        "one stall of ten jobs is one timeout"
    );
    run_round(&kit, &batch(2)).await;
    let log = kit.log_of(&sub).await;
    assert_eq!(log.len(), 20);
    assert!(log.iter().all(|a| a.outcome == AttemptOutcome::Retrying));
    assert!(
        kit.current(&sub).await.is_some(),
        "two rounds: below the limit of three"
    );

    // A success in the third round ends the row, whatever its batch read before.
    receiver.script(vec![Behaviour::Status(200)]);
    run_round(&kit, &batch(3)).await;
    assert!(kit.current(&sub).await.is_some());
    run_round(&kit, &batch(4)).await;
    run_round(&kit, &batch(5)).await;
    assert!(
        kit.current(&sub).await.is_some(),
        "two rounds since the success"
    );
    run_round(&kit, &batch(6)).await;
    assert!(
        kit.current(&sub).await.is_none(),
        "the third round in a row deletes it"
    );
}

#[tokio::test]
async fn concurrent_timeouts_count_once_per_round_in_memory() {
    concurrent_timeouts_count_once_per_round(DeliveryKit::new()).await;
}

/// The kit over DynamoDB tables of its own in moto.
async fn on_dynamodb() -> DeliveryKit {
    let sdk = webhooks_tests::moto::sdk_config().await;
    let store = DynamoSubscriptionStore::from_sdk(&sdk, webhooks_tests::unique("subs"));
    store.ensure_table().await.unwrap();
    let log = DynamoDeliveryLog::from_sdk(&sdk, webhooks_tests::unique("log"));
    log.ensure_table().await.unwrap();
    DeliveryKit::on(
        Arc::new(store),
        Arc::new(log),
        NetworkPolicy::allowing(IpRange::loopback()),
        |_| {},
    )
}

#[tokio::test]
async fn concurrent_timeouts_count_once_per_round_on_dynamodb() {
    concurrent_timeouts_count_once_per_round(on_dynamodb().await).await;
}

/// A subscription's own headers go with every delivery exactly as set, after the
/// platform's, which they cannot replace except `User-Agent` (SPEC section 9).
async fn own_headers_are_sent_exactly_and_replace_the_user_agent(kit: DeliveryKit) {
    let receiver = Receiver::start().await;
    let sub = kit
        .subscribe(&receiver.url, ContentType::Json, Some("shh"))
        .await;
    let sub = kit
        .set_own(
            &sub,
            json!({
                "X-Api-Key": "key 1/2=3;~", "Authorization": "Basic dXNlcjpwdw==",
                "User-Agent": "their-gateway/7", "X-Empty": ""
            }),
            None,
        )
        .await;
    assert!(
        kit.run(&[kit.job(&sub, 1), kit.job(&sub, 2)])
            .await
            .is_empty()
    );
    for r in receiver.wait_for(2, WAIT).await {
        assert_eq!(r.header("x-api-key"), Some("key 1/2=3;~"));
        assert_eq!(r.header("authorization"), Some("Basic dXNlcjpwdw=="));
        assert_eq!(r.header("x-empty"), Some(""));
        assert_eq!(
            r.all("user-agent"),
            ["their-gateway/7"],
            "theirs replaces the platform's"
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        let sha256 = hex_hmac::<Hmac<sha2::Sha256>>(b"shh", &r.body);
        assert_eq!(
            r.header("x-hub-signature-256"),
            Some(format!("sha256={sha256}").as_str()),
            "still signed"
        );
    }
    // Without headers of its own, a subscription gets the platform's User-Agent.
    let plain = kit.subscribe(&receiver.url, ContentType::Json, None).await;
    kit.run(&[kit.job(&plain, 3)]).await;
    let r = &receiver.wait_for(3, WAIT).await[2];
    assert!(r.header("user-agent").unwrap().starts_with("webhooks/"));
    assert_eq!(r.header("x-api-key"), None);
}

#[tokio::test]
async fn own_headers_are_sent_exactly_in_memory() {
    own_headers_are_sent_exactly_and_replace_the_user_agent(DeliveryKit::new()).await;
}

#[tokio::test]
async fn own_headers_are_sent_exactly_on_dynamodb() {
    own_headers_are_sent_exactly_and_replace_the_user_agent(on_dynamodb().await).await;
}

/// A token endpoint's answer.
fn token_answer(token: &str, expires_in: u64) -> Behaviour {
    Behaviour::Respond {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: format!(
            r#"{{"access_token":"{token}","token_type":"bearer","expires_in":{expires_in}}}"#
        ),
    }
}

/// An `auth` whose client id and secret need form-encoding (RFC 6749 section 2.3.1).
fn auth_at(token_url: &str) -> serde_json::Value {
    json!({
        "type": "oauth2_client_credentials", "token_url": token_url,
        "client_id": "my client", "client_secret": "s:e%c r+t", "scope": "read write"
    })
}

/// One token for many deliveries, across batches, sent as `Authorization: Bearer`; the
/// client authenticated as RFC 6749 section 2.3.1 says; a new token once it is 60 s from
/// expiring (the manual clock) and after a 401 from the receiver (SPEC section 9).
async fn one_token_serves_many_deliveries_until_it_expires_or_a_401(kit: DeliveryKit) {
    let (idp, receiver) = (Receiver::start().await, Receiver::start().await);
    idp.always(token_answer("tok-1", 3600));
    let sub = kit.subscribe(&receiver.url, ContentType::Json, None).await;
    let sub = kit.set_auth(&sub, auth_at(&idp.url)).await;
    let other = kit.subscribe(&receiver.url, ContentType::Json, None).await;
    let other = kit.set_auth(&other, auth_at(&idp.url)).await;
    let batch: Vec<DeliveryJob> = (1..=4)
        .map(|i| kit.job(&sub, i))
        .chain([kit.job(&other, 5)])
        .collect();
    assert!(kit.run(&batch).await.is_empty());
    assert!(
        kit.run(&[kit.job(&sub, 6), kit.job(&sub, 7)])
            .await
            .is_empty()
    );
    let got = receiver.wait_for(7, WAIT).await;
    assert!(
        got.iter()
            .all(|r| r.all("authorization") == ["Bearer tok-1"]),
        "{:?}",
        got.iter()
            .map(|r| r.all("authorization"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        idp.count(),
        1,
        "one token request for two batches of the same auth"
    );
    let asked = &idp.requests()[0];
    assert_eq!(asked.method, "POST");
    assert_eq!(
        asked.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        asked.body_text(),
        "grant_type=client_credentials&scope=read+write"
    );
    let basic = asked
        .header("authorization")
        .unwrap()
        .strip_prefix("Basic ")
        .unwrap();
    assert_eq!(
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(basic)
                .unwrap()
        )
        .unwrap(),
        "my+client:s%3Ae%25c+r%2Bt",
        "id and secret form-encoded, then joined by `:`"
    );
    // Reused until 60 s before it expires.
    idp.always(token_answer("tok-2", 3600));
    kit.clock.advance(3_540_000 - 1_000);
    kit.run(&[kit.job(&sub, 8)]).await;
    assert_eq!(idp.count(), 1);
    kit.clock.advance(1_000);
    kit.run(&[kit.job(&sub, 9)]).await;
    assert_eq!(idp.count(), 2, "expired: a new token");
    assert_eq!(
        receiver.wait_for(9, WAIT).await[8].header("authorization"),
        Some("Bearer tok-2")
    );
    // A 401 discards it: that attempt fails, the next one fetches a new token.
    idp.always(token_answer("tok-3", 3600));
    receiver.script(vec![Behaviour::Status(401)]);
    kit.run(&[kit.job(&sub, 10)]).await;
    assert_eq!(idp.count(), 2);
    kit.run(&[kit.job(&sub, 11)]).await;
    assert_eq!(idp.count(), 3, "a new token after the 401");
    let got = receiver.wait_for(11, WAIT).await;
    assert_eq!(got[9].header("authorization"), Some("Bearer tok-2"));
    assert_eq!(got[10].header("authorization"), Some("Bearer tok-3"));
}

#[tokio::test]
async fn one_token_serves_many_deliveries_in_memory() {
    one_token_serves_many_deliveries_until_it_expires_or_a_401(DeliveryKit::new()).await;
}

#[tokio::test]
async fn one_token_serves_many_deliveries_on_dynamodb() {
    one_token_serves_many_deliveries_until_it_expires_or_a_401(on_dynamodb().await).await;
}

/// A failed token request is a failed attempt with its `token_` kind, retried on the
/// schedule, sending nothing to the receiver, its answer in no log line; a later attempt
/// with a token delivers.
async fn a_failed_token_request_is_a_retried_attempt_with_its_kind(kit: DeliveryKit) {
    let (idp, receiver) = (Receiver::start().await, Receiver::start().await);
    let sub = kit.subscribe(&receiver.url, ContentType::Json, None).await;
    let sub = kit.set_auth(&sub, auth_at(&idp.url)).await;
    let refused = kit.subscribe(&receiver.url, ContentType::Json, None).await;
    let refused = kit.set_auth(&refused, auth_at(&refused_url())).await;
    let answers = [
        (500, "SECRET-ANSWER".to_owned(), "token_http_500"),
        (
            200,
            "SECRET-ANSWER: not json".to_owned(),
            "token_bad_response",
        ),
        (
            200,
            r#"{"access_token":"SECRET-ANSWER","token_type":"mac"}"#.to_owned(),
            "token_bad_response",
        ),
        (
            200,
            format!(
                r#"{{"access_token":"SECRET-ANSWER","token_type":"Bearer","pad":"{}"}}"#,
                "x".repeat(64 * 1024)
            ),
            "token_bad_response",
        ),
    ];
    for (i, (status, body, kind)) in answers.into_iter().enumerate() {
        idp.always(Behaviour::Respond {
            status,
            headers: vec![],
            body,
        });
        let job = kit.job(&sub, i as u64 + 1);
        assert!(kit.run(std::slice::from_ref(&job)).await.is_empty());
        let log = kit.log_of(&sub).await;
        let line = &log[0];
        assert_eq!(
            (line.outcome, line.error_kind.as_deref(), line.http_status),
            (AttemptOutcome::Retrying, Some(kind), None)
        );
        assert!(
            line.response_body.is_empty(),
            "the token answer is not kept"
        );
        assert!(
            !line.reason.as_deref().unwrap().contains("SECRET"),
            "{:?}",
            line.reason
        );
        let sent = kit.queue.take_jobs();
        assert_eq!(sent.len(), 1, "retried like any failure");
        assert_eq!((sent[0].0.attempt, sent[0].1), (2, 5), "on the schedule");
    }
    assert_eq!(receiver.count(), 0, "nothing is sent without a token");
    assert_eq!(idp.count(), 4, "each attempt asks again");
    kit.run(&[kit.job(&refused, 9)]).await;
    assert_eq!(
        kit.log_of(&refused).await[0].error_kind.as_deref(),
        Some("token_connection")
    );
    idp.always(token_answer("tok", 60));
    kit.run(&[kit.job(&sub, 10)]).await;
    assert_eq!(
        receiver.wait_for(1, WAIT).await[0].header("authorization"),
        Some("Bearer tok")
    );
    assert_eq!(kit.log_of(&sub).await[0].outcome, AttemptOutcome::Delivered);
    // A lifetime of 60 s is too short to reuse.
    kit.run(&[kit.job(&sub, 11)]).await;
    assert_eq!(idp.count(), 6);
}

#[tokio::test]
async fn a_failed_token_request_is_retried_with_its_kind_in_memory() {
    a_failed_token_request_is_a_retried_attempt_with_its_kind(DeliveryKit::new()).await;
}

#[tokio::test]
async fn a_failed_token_request_is_retried_with_its_kind_on_dynamodb() {
    a_failed_token_request_is_a_retried_attempt_with_its_kind(on_dynamodb().await).await;
}

/// A schedule of `[1, 3]`: three attempts, 1 s and 3 s apart, then `gave_up`, as with
/// the installation's schedule (SPEC section 9).
async fn an_own_schedule_gives_three_attempts_then_gives_up(kit: DeliveryKit) {
    let receiver = Receiver::start().await;
    receiver.always(Behaviour::Status(500));
    let sub = kit.subscribe(&receiver.url, ContentType::Form, None).await;
    let sub = kit.set_own(&sub, json!({}), Some(json!([1, 3]))).await;
    let mut job = kit.job(&sub, 1);
    for delay in [1u32, 3] {
        let now = kit.clock_millis() + 1; // `run` moves the clock by 1 ms
        assert!(kit.run(std::slice::from_ref(&job)).await.is_empty());
        let mut sent = kit.queue.take_jobs();
        assert_eq!(sent.len(), 1);
        let (next, delay_secs) = sent.remove(0);
        assert_eq!((next.attempt, delay_secs), (job.attempt + 1, delay));
        assert_eq!(next.due_at, Some(now + i64::from(delay) * 1000));
        kit.clock.set(next.due_at.unwrap() - 1);
        job = next;
    }
    assert!(kit.run(std::slice::from_ref(&job)).await.is_empty());
    assert!(
        kit.queue
            .take()
            .iter()
            .all(|m| DeliveryJob::from_message(&m.body)
                .map_or(true, |j| j.delivery_id != job.delivery_id)),
        "after the third attempt nothing is scheduled"
    );
    let log = kit.log_of(&sub).await;
    assert_eq!(
        log.iter()
            .map(|a| (a.attempt, a.outcome))
            .collect::<Vec<_>>(),
        [
            (3, AttemptOutcome::GaveUp),
            (2, AttemptOutcome::Retrying),
            (1, AttemptOutcome::Retrying)
        ]
    );
    assert_eq!(
        (log[1].at - log[2].at, log[0].at - log[1].at),
        (1000, 3000),
        "1 s, then 3 s apart"
    );
    assert_eq!(receiver.requests().len(), 3);
}

#[tokio::test]
async fn an_own_schedule_gives_three_attempts_then_gives_up_in_memory() {
    an_own_schedule_gives_three_attempts_then_gives_up(DeliveryKit::new()).await;
}

#[tokio::test]
async fn an_own_schedule_gives_three_attempts_then_gives_up_on_dynamodb() {
    an_own_schedule_gives_three_attempts_then_gives_up(on_dynamodb().await).await;
}

#[tokio::test]
async fn a_longer_retry_after_wins_over_an_own_delay_and_a_shorter_one_does_not() {
    let kit = DeliveryKit::new();
    let receiver = Receiver::start().await;
    receiver.script(vec![Behaviour::busy("120"), Behaviour::busy("2")]);
    let sub = kit.subscribe(&receiver.url, ContentType::Form, None).await;
    let sub = kit.set_own(&sub, json!({}), Some(json!([10, 10]))).await;
    assert_eq!(retry_of(&kit, &sub, 1).await, (120_000, 120));
    assert_eq!(
        retry_of(&kit, &sub, 2).await,
        (10_000, 10),
        "a shorter Retry-After does not shorten the owner's delay"
    );
}

/// With the installation's jitter, a 1 s delay lands between 0.9 s and 1.1 s: rounded
/// up to whole seconds, it is 1 s or 2 s, never 0 (SQS delays are whole seconds).
#[tokio::test]
async fn own_delays_keep_the_jitter_in_whole_seconds_and_never_become_zero() {
    let kit = DeliveryKit::with(NetworkPolicy::allowing(IpRange::loopback()), |s| {
        s.retry.jitter = 0.1
    });
    let receiver = Receiver::start().await;
    receiver.always(Behaviour::Status(500));
    let sub = kit.subscribe(&receiver.url, ContentType::Form, None).await;
    let sub = kit.set_own(&sub, json!({}), Some(json!([1]))).await;
    let jobs: Vec<DeliveryJob> = (0..40).map(|i| kit.job(&sub, i)).collect();
    let at = kit.clock_millis() + 1;
    assert!(kit.run(&jobs).await.is_empty());
    let delays: std::collections::BTreeSet<(u32, i64)> = kit
        .queue
        .take_jobs()
        .into_iter()
        .map(|(job, secs)| (secs, job.due_at.unwrap() - at))
        .collect();
    assert_eq!(
        delays,
        [(1, 1000), (2, 2000)].into(),
        "below 1 s rounds up to 1, above to 2 (a chance of 2^-39 to see only one)"
    );
}

#[tokio::test]
async fn failures_are_retried_on_the_schedule_then_given_up() {
    let kit = DeliveryKit::new();
    let receiver = Receiver::start().await;
    receiver.always(Behaviour::Status(500));
    let sub = kit.subscribe(&receiver.url, ContentType::Form, None).await;
    let expected = [5u64, 300, 1800, 7200, 18000, 36000, 36000];
    let mut job = kit.job(&sub, 1);
    for (i, delay) in expected.iter().enumerate() {
        let now = kit.clock_millis() + 1; // `run` moves the clock by 1 ms
        assert!(kit.run(std::slice::from_ref(&job)).await.is_empty());
        let sent = kit.queue.take_jobs();
        assert_eq!(sent.len(), 1, "attempt {} schedules one retry", i + 1);
        let (next, delay_secs) = sent.into_iter().next().unwrap();
        assert_eq!(next.attempt, job.attempt + 1);
        assert_eq!(
            next.delivery_id, job.delivery_id,
            "webhook-id stays the same across retries"
        );
        assert_eq!(
            next.due_at,
            Some(now + *delay as i64 * 1000),
            "retry {} after {delay} s",
            i + 1
        );
        assert_eq!(
            delay_secs as u64,
            (*delay).min(900),
            "SQS delays top out at 15 minutes"
        );
        let log = kit.log_of(&sub).await;
        assert_eq!(
            (log[0].outcome, log[0].next_attempt_at),
            (AttemptOutcome::Retrying, next.due_at)
        );
        assert_eq!(log[0].error_kind.as_deref(), Some("http_500"));
        kit.clock.set(next.due_at.unwrap() - 1);
        job = next;
    }
    assert!(kit.run(std::slice::from_ref(&job)).await.is_empty());
    assert!(
        kit.queue.take().is_empty(),
        "after the eighth attempt nothing is scheduled"
    );
    assert_eq!(kit.log_of(&sub).await[0].outcome, AttemptOutcome::GaveUp);
    assert_eq!(receiver.requests().len(), 8);
    let ids: std::collections::HashSet<_> = receiver
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1);
}

#[tokio::test]
async fn retries_beyond_fifteen_minutes_hop_on_the_queue_without_sending() {
    let kit = DeliveryKit::new();
    let receiver = Receiver::start().await;
    let sub = kit.subscribe(&receiver.url, ContentType::Form, None).await;
    let mut job = kit.job(&sub, 1);
    job.attempt = 4;
    job.due_at = Some(kit.clock_millis() + 7200 * 1000); // the 2 h retry
    kit.counts.reset();

    // Received after the first 15-minute hop: not due, so it goes back for the rest.
    kit.clock.advance(900 * 1000 - 1);
    assert!(kit.run(std::slice::from_ref(&job)).await.is_empty());
    let (again, delay) = kit.queue.take_jobs().remove(0);
    assert_eq!((again.attempt, again.due_at, delay), (4, job.due_at, 900));
    assert!(
        receiver.requests().is_empty(),
        "nothing is sent before it is due"
    );
    assert_eq!(
        kit.counts
            .batch_gets
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "and the store is not read"
    );

    // The last hop is shorter than 15 minutes.
    kit.clock.set(job.due_at.unwrap() - 300 * 1000 - 1);
    kit.run(std::slice::from_ref(&job)).await;
    assert_eq!(kit.queue.take_jobs()[0].1, 300);

    // On time, it is sent.
    kit.clock.set(job.due_at.unwrap() - 1);
    kit.run(std::slice::from_ref(&job)).await;
    assert_eq!(receiver.wait_for(1, WAIT).await.len(), 1);
    assert_eq!(kit.log_of(&sub).await[0].attempt, 4);
}

/// Runs the first attempt of a job for `object_id`; answers how long after the attempt
/// its retry is due, in milliseconds, and the retry message's SQS delay.
async fn retry_of(
    kit: &DeliveryKit,
    sub: &webhooks_core::model::subscription::Subscription,
    object_id: u64,
) -> (i64, u32) {
    kit.run(&[kit.job(sub, object_id)]).await;
    let (next, delay) = kit.queue.take_jobs().remove(0);
    (next.due_at.unwrap() - kit.clock_millis(), delay)
}

#[tokio::test]
async fn retry_after_is_honoured_and_clamped() {
    let kit = DeliveryKit::new();
    let receiver = Receiver::start().await;
    receiver.script(vec![Behaviour::busy("120"), Behaviour::busy("9999999")]);
    let sub = kit.subscribe(&receiver.url, ContentType::Form, None).await;
    assert_eq!(retry_of(&kit, &sub, 1).await, (120_000, 120));
    assert_eq!(
        retry_of(&kit, &sub, 2).await,
        (86_400_000, 900),
        "clamped to a day"
    );
    assert_eq!(kit.log_of(&sub).await[0].response_body, "busy");
}

#[tokio::test]
async fn refused_reset_redirected_and_client_errors_are_retried() {
    let kit = DeliveryKit::new();
    let receiver = Receiver::start().await;
    let target = Receiver::start().await;
    receiver.script(vec![
        Behaviour::Reset,
        Behaviour::Redirect(target.url.clone()),
        Behaviour::Status(404),
    ]);
    let sub = kit.subscribe(&receiver.url, ContentType::Form, None).await;
    let refused = kit.subscribe(&refused_url(), ContentType::Form, None).await;
    for object in 1..=3 {
        kit.run(&[kit.job(&sub, object)]).await;
    }
    kit.run(&[kit.job(&refused, 4)]).await;
    let kinds: Vec<String> = kit
        .log_of(&sub)
        .await
        .iter()
        .rev()
        .map(|a| a.error_kind.clone().unwrap())
        .collect();
    assert_eq!(kinds, vec!["connection_reset", "http_302", "http_404"]);
    assert_eq!(
        kit.log_of(&refused).await[0].error_kind.as_deref(),
        Some("connection_refused")
    );
    let retried = kit.queue.take_jobs();
    assert_eq!(retried.len(), 4);
    assert!(retried.iter().all(|(j, d)| j.attempt == 2 && *d == 5));
    assert!(target.requests().is_empty(), "redirects are not followed");
}

#[tokio::test]
async fn a_private_target_is_refused_when_attempted_and_retried() {
    // The installation allows no private range, not even loopback.
    let kit = DeliveryKit::with(NetworkPolicy::default(), |_| {});
    let receiver = Receiver::start().await;
    let sub = kit.subscribe(&receiver.url, ContentType::Form, None).await;
    kit.run(&[kit.job(&sub, 1)]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.requests().is_empty());
    let log = kit.log_of(&sub).await;
    assert_eq!(
        (log[0].outcome, log[0].error_kind.as_deref()),
        (AttemptOutcome::Retrying, Some("blocked_address"))
    );
}

#[tokio::test]
async fn a_batch_reads_its_subscriptions_once_and_sends_concurrently() {
    let kit = DeliveryKit::with(
        webhooks_core::model::network::NetworkPolicy::allowing(
            webhooks_core::model::network::IpRange::loopback(),
        ),
        |s| {
            s.timeout = Duration::from_secs(5);
        },
    );
    let receiver = Receiver::start().await;
    receiver.always(Behaviour::Delay(Duration::from_millis(800), 200));
    let mut jobs = Vec::new();
    for i in 0..10 {
        let sub = kit.subscribe(&receiver.url, ContentType::Json, None).await;
        jobs.push(kit.job(&sub, i + 1));
    }
    let deleted = kit.subscribe(&receiver.url, ContentType::Json, None).await;
    jobs.push(kit.job(&deleted, 99));
    webhooks_core::ports::store::SubscriptionStore::delete(
        kit.store.as_ref(),
        &deleted.owner,
        &deleted.id,
    )
    .await
    .unwrap();
    kit.counts.reset();
    let started = Instant::now();
    assert!(kit.run(&jobs).await.is_empty());
    let elapsed = started.elapsed();
    assert_eq!(
        receiver.requests().len(),
        10,
        "the deleted subscription receives nothing"
    );
    assert_eq!(
        kit.counts
            .batch_gets
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one BatchGetItem for the batch"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "ten 0.8 s requests took {elapsed:?}: not sent concurrently"
    );
}

#[tokio::test]
async fn unreadable_jobs_are_parked() {
    let kit = DeliveryKit::new();
    let messages = vec![webhooks_core::ports::queue::IncomingMessage {
        message_id: "bad".into(),
        body: "{\"not\": \"a job\"}".into(),
        receive_count: 1,
        attributes: Default::default(),
    }];
    let failed =
        webhooks_core::stages::batch::BatchHandler::handle_batch(&kit.deliverer, &messages).await;
    assert!(failed.is_empty());
    let parked = webhooks_tests::fanout_kit::drain(kit.dead_letters.as_ref()).await;
    assert_eq!(parked.len(), 1);
    assert!(parked[0].attributes["webhooks_reason"].starts_with("not a delivery job"));
}

/// A sealed secret is bound to its subscription: copied onto another row (say by someone
/// with write access to the table but not the key), it does not open, and nothing is
/// sent unsigned or signed with it.
#[tokio::test]
async fn a_secret_copied_from_another_subscription_does_not_sign() {
    let kit = DeliveryKit::new();
    let receiver = Receiver::start().await;
    let victim = kit
        .subscribe(&receiver.url, ContentType::Json, Some("victim-secret"))
        .await;
    let mut thief = kit
        .subscribe(&receiver.url, ContentType::Json, Some("own-secret"))
        .await;
    thief.sealed_secret = victim.sealed_secret.clone();
    webhooks_core::ports::store::SubscriptionStore::put(kit.store.as_ref(), &thief)
        .await
        .unwrap();

    let failed = kit.run(&[kit.job(&thief, 1)]).await;
    assert_eq!(failed, vec!["m0".to_owned()], "the job is not done");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.requests().is_empty(), "nothing was sent");

    // The victim's own row still signs with its secret.
    assert!(kit.run(&[kit.job(&victim, 2)]).await.is_empty());
    let got = receiver.wait_for(1, WAIT).await;
    let expected = hex_hmac::<Hmac<sha2::Sha256>>(b"victim-secret", &got[0].body);
    assert_eq!(
        got[0].header("x-hub-signature-256"),
        Some(format!("sha256={expected}").as_str())
    );
}

#[tokio::test]
async fn a_slow_receiver_gets_a_bounded_share_and_its_jobs_wait_on_the_queue() {
    let kit = DeliveryKit::new().with_breaker(BreakerSettings {
        unproven_in_flight: 2,
        ..BreakerSettings::default()
    });
    let slow = Receiver::start().await;
    slow.always(Behaviour::Hang);
    let fast = Receiver::start().await;
    let s = kit.subscribe(&slow.url, ContentType::Form, None).await;
    let f = kit.subscribe(&fast.url, ContentType::Form, None).await;
    // A quick delivery proves the fast receiver.
    assert!(kit.run(&[kit.job(&f, 99)]).await.is_empty());

    // Five jobs each: the slow receiver, not proven quick, gets two attempts; the others
    // wait a moment on the queue. The fast receiver gets all five at once.
    let mut batch: Vec<DeliveryJob> = (0..5).map(|i| kit.job(&s, i)).collect();
    batch.extend((0..5).map(|i| kit.job(&f, 100 + i)));
    assert!(kit.run(&batch).await.is_empty());
    assert_eq!((slow.count(), fast.count()), (2, 6));
    let queued = kit.queue.take_jobs();
    let deferred: Vec<_> = queued.iter().filter(|(j, _)| j.attempt == 1).collect();
    let retries: Vec<_> = queued.iter().filter(|(j, _)| j.attempt == 2).collect();
    assert_eq!((deferred.len(), retries.len()), (3, 2), "{queued:?}");
    assert!(deferred.iter().all(|(_, delay)| *delay == 1));
    assert_eq!(
        kit.log_of(&s).await.len(),
        2,
        "a deferred job is not an attempt"
    );

    // The timeouts opened its breaker: its jobs wait out the cool-down untried, while the
    // fast receiver is served at once.
    let batch = vec![kit.job(&s, 10), kit.job(&s, 11), kit.job(&f, 110)];
    assert!(kit.run(&batch).await.is_empty());
    assert_eq!((slow.count(), fast.count()), (2, 7));
    let queued = kit.queue.take_jobs();
    assert_eq!(queued.len(), 2);
    assert!(
        queued
            .iter()
            .all(|(j, delay)| j.attempt == 1 && (28..=30).contains(delay)),
        "{queued:?}"
    );
}

/// A batch's aftermath goes out together: its retries in shared send requests, its log
/// lines in shared writes. A message whose retry could not be queued is received again,
/// and its log line waits for that attempt; its neighbours are done.
#[tokio::test]
async fn a_batch_queues_its_retries_and_writes_its_log_lines_together() {
    use std::sync::atomic::Ordering::SeqCst;
    let kit = DeliveryKit::new();
    let failing = Receiver::start().await;
    failing.always(Behaviour::Status(500));
    let fine = Receiver::start().await;
    let down = kit.subscribe(&failing.url, ContentType::Form, None).await;
    let up = kit.subscribe(&fine.url, ContentType::Json, None).await;
    let mut jobs: Vec<DeliveryJob> = (1..=30).map(|n| kit.job(&down, n)).collect();
    jobs.extend((31..=60).map(|n| kit.job(&up, n)));

    assert!(kit.run(&jobs).await.is_empty());
    assert_eq!(kit.queue.take_jobs().len(), 30, "one retry per failed job");
    assert_eq!(
        kit.queue.requests.load(SeqCst),
        3,
        "thirty retries, ten to a send request"
    );
    assert_eq!(
        (
            kit.log_counts.writes.load(SeqCst),
            kit.log_counts.write_requests.load(SeqCst)
        ),
        (60, 3),
        "sixty log lines, 25 to a write request"
    );
    assert_eq!(kit.counts.batch_gets.load(SeqCst), 1);
    assert_eq!(
        (kit.log_of(&down).await.len(), kit.log_of(&up).await.len()),
        (30, 30)
    );

    // The queue refuses: the failed jobs' messages come back, unlogged; the delivered
    // ones are done and logged.
    kit.queue.refusing.store(true, SeqCst);
    let again = vec![kit.job(&down, 61), kit.job(&up, 62), kit.job(&down, 63)];
    let mut failed = kit.run(&again).await;
    failed.sort();
    assert_eq!(failed, vec!["m0".to_owned(), "m2".to_owned()]);
    assert_eq!(
        (kit.log_of(&down).await.len(), kit.log_of(&up).await.len()),
        (30, 31)
    );
}

/// Operational events: a removal and a give-up are told to the owner's subscriptions to
/// them (and nobody else's), with the subscription as the object and stable delivery
/// ids; a delivery of an operational event that fails tells nobody.
#[tokio::test]
async fn the_owner_hears_of_removals_and_give_ups_and_never_in_a_loop() {
    let kit = DeliveryKit::with(NetworkPolicy::allowing(IpRange::loopback()), |s| {
        s.api_base_url = "https://api.example".into();
    });
    let receiver = Receiver::start().await;
    let gone = kit.subscribe(&receiver.url, ContentType::Form, None).await;
    let listener = |event_id: &str| {
        let mut sub = gone.clone();
        sub.id = webhooks_core::model::ids::IdGenerator::default().next(&kit.clock);
        sub.event_id = event_id.into();
        sub
    };
    let removed_listener = listener("webhook_subscription_removed");
    let failed_listener = listener("webhook_delivery_failed");
    let mut stranger = listener("webhook_subscription_removed");
    stranger.owner.user_id = 8;
    for sub in [&removed_listener, &failed_listener, &stranger] {
        kit.store.put(sub).await.unwrap();
    }

    // 410: removed, and the owner's listener (only) gets a job about it.
    receiver.always(Behaviour::Status(410));
    kit.run(&[kit.job(&gone, 1)]).await;
    let told = kit.queue.take_jobs();
    assert_eq!(told.len(), 1, "{told:?}");
    let (job, _) = &told[0];
    assert_eq!(job.subscription.id, removed_listener.id);
    assert_eq!(job.event_id, "webhook_subscription_removed");
    assert_eq!(job.subject.as_deref(), Some(gone.id.as_str()));
    assert_eq!(
        job.resource_url.as_deref(),
        Some(
            format!(
                "https://api.example/api/v0/webhooks/subscriptions/{}",
                gone.id
            )
            .as_str()
        )
    );

    // Its delivery: the body's id is the subscription removed; the log shows it too.
    let notified = Receiver::start().await;
    let mut listening = removed_listener.clone();
    listening.trigger_url =
        webhooks_core::model::url::TriggerUrl::from_stored(notified.url.clone());
    kit.store.put(&listening).await.unwrap();
    kit.run(std::slice::from_ref(job)).await;
    let got = notified.wait_for(1, WAIT).await;
    assert_eq!(
        String::from_utf8_lossy(&got[0].body),
        format!(
            "id={}&resource_url=https%3A%2F%2Fapi.example%2Fapi%2Fv0%2Fwebhooks%2Fsubscriptions%2F{}",
            gone.id, gone.id
        )
    );
    assert_eq!(
        kit.log_of(&listening).await[0].subject.as_deref(),
        Some(gone.id.as_str())
    );

    // The listener itself answers 410: removed too, and nobody is told (no loop).
    notified.always(Behaviour::Status(410));
    kit.run(std::slice::from_ref(job)).await;
    assert!(kit.current(&listening).await.is_none());
    assert!(kit.queue.take_jobs().is_empty(), "no notice of a notice");

    // A delivery that gives up (its last attempt fails) is told to the failure listener.
    let flaky_receiver = Receiver::start().await;
    flaky_receiver.always(Behaviour::Status(500));
    let flaky = kit
        .subscribe(&flaky_receiver.url, ContentType::Form, None)
        .await;
    let mut last = kit.job(&flaky, 2);
    last.attempt = 8;
    kit.run(std::slice::from_ref(&last)).await;
    let told = kit.queue.take_jobs();
    assert_eq!(
        told.iter()
            .map(|(j, _)| (
                j.subscription.id.clone(),
                j.event_id.as_str(),
                j.subject.clone()
            ))
            .collect::<Vec<_>>(),
        vec![(
            failed_listener.id.clone(),
            "webhook_delivery_failed",
            Some(flaky.id.to_string())
        )]
    );
    // The operator heard of the removal and the give-up, not of the notice's removal.
    let heard = kit.operator.told.lock().unwrap().clone();
    assert_eq!(
        heard
            .iter()
            .map(|n| (n.event_id.as_str(), n.subscription_id.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("webhook_subscription_removed", gone.id.to_string()),
            ("webhook_delivery_failed", flaky.id.to_string()),
        ]
    );
    assert_eq!(
        heard[0].reason.as_deref(),
        Some("the receiver answered 410 Gone; the subscription was deleted")
    );
    // The same give-up again (a retried batch): the same delivery id.
    kit.run(std::slice::from_ref(&last)).await;
    assert_eq!(
        kit.queue.take_jobs()[0].0.delivery_id,
        told[0].0.delivery_id
    );
}

/// Lines an attempt writes at info carry its `delivery_id` as a field of their own (its
/// span is at debug, so at info nothing else would put it there), as the Lambda's JSON
/// lines show them; a success writes no line at all.
#[tokio::test]
async fn an_attempts_log_lines_name_its_delivery_and_a_success_writes_none() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::layer::SubscriberExt;
    use webhooks_core::observe::telemetry::FlatJson;

    #[derive(Clone, Default)]
    struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .with_writer(move || writer.clone())
            .with_filter(LevelFilter::INFO),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let read = || -> Vec<serde_json::Value> {
        String::from_utf8(lines.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };

    let kit = DeliveryKit::new();
    let receiver = Receiver::start().await;
    let sub = kit.subscribe(&receiver.url, ContentType::Json, None).await;
    assert!(kit.run(&[kit.job(&sub, 1)]).await.is_empty());
    assert_eq!(receiver.wait_for(1, WAIT).await.len(), 1);
    let after_success = read();
    assert!(
        !after_success
            .iter()
            .any(|l| l["message"] == "delivery attempt" || l["message"] == "delivered"),
        "{after_success:?}"
    );

    receiver.always(Behaviour::Status(500));
    let failing = kit.job(&sub, 2);
    assert!(kit.run(std::slice::from_ref(&failing)).await.is_empty());
    let attempt: Vec<serde_json::Value> = read()
        .into_iter()
        .filter(|l| l["message"] == "delivery attempt")
        .collect();
    assert_eq!(attempt.len(), 1, "{attempt:?}");
    assert_eq!(attempt[0]["delivery_id"], failing.delivery_id.as_str());
    assert_eq!(attempt[0]["outcome"], "retrying");
    assert_eq!(attempt[0]["status"], 500);
}

/// moto answers requests on threads without DynamoDB's atomic `ADD` (two concurrent
/// `UpdateItem`s may both answer the same count) or SQS's one receiver per message in
/// flight; the test's instances reach it one request at a time, as the services apply
/// them.
struct OneAtATime<T: ?Sized> {
    inner: Arc<T>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

#[async_trait::async_trait]
impl webhooks_core::ports::rate_limit::RateLimiter
    for OneAtATime<dyn webhooks_core::ports::rate_limit::RateLimiter>
{
    async fn take(
        &self,
        subscription: &webhooks_core::model::subscription::SubscriptionRef,
        second: i64,
        wanted: u32,
    ) -> Result<u64, webhooks_core::ports::store::StoreError> {
        let _one = self.lock.lock().await;
        self.inner.take(subscription, second, wanted).await
    }
}

#[async_trait::async_trait]
impl webhooks_core::ports::queue::QueueReceiver
    for OneAtATime<dyn webhooks_core::ports::queue::QueueReceiver>
{
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<webhooks_core::ports::queue::Received>, webhooks_core::ports::queue::QueueError>
    {
        let _one = self.lock.lock().await;
        // Short polls, so the lock is not held through a long one.
        let _ = wait;
        self.inner.receive(max, Duration::ZERO).await
    }
    async fn ack(&self, receipt: &str) -> Result<(), webhooks_core::ports::queue::QueueError> {
        self.inner.ack(receipt).await
    }
    async fn release(&self, receipt: &str) -> Result<(), webhooks_core::ports::queue::QueueError> {
        self.inner.release(receipt).await
    }
}

/// A burst of 40 jobs to a subscription limited to 5 a second (SPEC section 9,
/// `rate_limit`), handled by two instances of the delivery stage (each its own breaker,
/// and on DynamoDB its own limiter client on the same table), four batches at a time
/// each, polling the same queue at once: all 40 arrive, each once, no second of the
/// platform's clock (`webhook-timestamp`, the second the POST started) holds more than 5
/// starts, every delivery is one attempt, and nothing reaches the dead-letter queue.
async fn a_rate_limit_holds_across_instances(aws: bool) {
    use webhooks_core::adapters::aws::dynamodb_rate_limit::DynamoRateLimiter;
    use webhooks_core::ports::queue::QueueReceiver;
    use webhooks_core::ports::rate_limit::RateLimiter;
    use webhooks_tests::client::{claims, token};
    let rate_table = webhooks_tests::unique("rate");
    let vars = [("WEBHOOKS_RATE_LIMIT_TABLE", rate_table.as_str())];
    // The platform without its own delivery workers: the test runs the instances.
    let (platform, client, _running, _moto) = if aws {
        let moto = webhooks_tests::lambda_runtime::MotoPlatform::start(&vars).await;
        let client = webhooks_tests::client::Client::new(moto.running.base_url());
        (moto.platform.clone(), client, None, Some(moto))
    } else {
        let platform = Arc::new(
            webhooks_local::compose(
                &webhooks_local::Backend::Memory,
                webhooks_tests::runner::settings(&vars),
            )
            .await
            .unwrap(),
        );
        let running = webhooks_local::serve(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            platform.app.clone(),
        )
        .await
        .unwrap();
        let client = webhooks_tests::client::Client::new(running.base_url());
        (platform, client, Some(running), None)
    };
    let receiver = Receiver::start().await;
    let owner = token(&claims(41, "hq"));
    let created = client
        .post_json(
            "/api/v0/webhooks/subscriptions",
            &owner,
            &json!({"trigger_url": receiver.url, "event_id": "assign_task", "rate_limit": 5}),
        )
        .await;
    let sub = &created.tree["response"]["subscription"];
    assert_eq!(sub["rate_limit"], 5, "{:?}", created.tree);
    let id =
        webhooks_core::model::ids::SubscriptionId::parse(sub["subscription_id"].as_str().unwrap())
            .unwrap();

    let lock = Arc::new(tokio::sync::Mutex::new(()));
    let queue: Arc<dyn QueueReceiver> = if aws {
        Arc::new(OneAtATime {
            inner: platform.deliveries.receiver.clone(),
            lock: lock.clone(),
        })
    } else {
        platform.deliveries.receiver.clone()
    };
    let (stop, _) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for _ in 0..2 {
        let d = &platform.deliverer;
        let limiter: Arc<dyn RateLimiter> = if aws {
            let sdk = webhooks_tests::moto::sdk_config().await;
            let own: Arc<dyn RateLimiter> =
                Arc::new(DynamoRateLimiter::from_sdk(&sdk, &rate_table));
            Arc::new(OneAtATime {
                inner: own,
                lock: lock.clone(),
            })
        } else {
            // One process: the memory counters are the process's.
            d.limiter.clone()
        };
        let instance = Arc::new(webhooks_core::stages::delivery::Deliverer {
            store: d.store.clone(),
            log: d.log.clone(),
            deliveries: d.deliveries.clone(),
            dead_letters: d.dead_letters.clone(),
            sender: d.sender.clone(),
            sealer: d.sealer.clone(),
            clock: d.clock.clone(),
            settings: d.settings.clone(),
            breaker: Default::default(),
            operator: d.operator.clone(),
            tokens: Default::default(),
            limiter,
        });
        for _ in 0..4 {
            workers.push(tokio::spawn(webhooks_core::stages::batch::consume(
                queue.clone(),
                instance.clone(),
                stop.subscribe(),
                "delivery instance",
            )));
        }
    }

    let key = webhooks_core::model::subscription::SubscriptionRef {
        id: id.clone(),
        owner: webhooks_core::model::identity::Owner {
            deployment: webhooks_core::model::identity::Deployment::parse("hq").unwrap(),
            user_id: 41,
        },
    };
    let jobs: Vec<_> = (1..=40u64)
        .map(|n| {
            let job = DeliveryJob {
                delivery_id: webhooks_core::model::job::delivery_id(&format!("burst-{n}"), &id),
                subscription: key.clone(),
                event_id: "assign_task".into(),
                object_id: n,
                resource_url: None,
                occurred_at: "2026-12-06T18:00:00Z".into(),
                attempt: 1,
                due_at: None,
                subject: None,
            };
            webhooks_core::ports::queue::OutgoingMessage::new(job.to_message())
        })
        .collect();
    webhooks_core::ports::queue::send_all(platform.deliveries.sender.as_ref(), jobs, 4)
        .await
        .unwrap();

    let got = receiver.wait_for(40, Duration::from_secs(40)).await;
    assert_eq!(got.len(), 40);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = receiver.requests();
    let mut ids: Vec<&str> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (40, 40), "each job arrives once");
    let mut per_second = std::collections::BTreeMap::<i64, usize>::new();
    for r in &got {
        let second: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        *per_second.entry(second).or_default() += 1;
    }
    assert!(
        per_second.values().all(|n| *n <= 5),
        "at most 5 starts a second: {per_second:?}"
    );
    assert!(
        per_second.len() >= 8,
        "40 at 5 a second take 8 seconds: {per_second:?}"
    );
    let log = platform
        .deliverer
        .log
        .page(&key, None, 100)
        .await
        .unwrap()
        .attempts;
    assert_eq!(log.len(), 40);
    assert!(
        log.iter()
            .all(|a| a.attempt == 1 && a.outcome == AttemptOutcome::Delivered),
        "waiting is no attempt and no failure"
    );
    let dead = platform
        .deliveries_dead_letters
        .receiver
        .receive(10, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(dead.is_empty(), "nothing in the dead-letter queue");
    stop.send(true).unwrap();
    for w in workers {
        w.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_instances_in_memory() {
    a_rate_limit_holds_across_instances(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_instances_on_dynamodb() {
    a_rate_limit_holds_across_instances(true).await;
}

/// Retries wait for a slot too, and a job put back is untried: its attempt number
/// unchanged, nothing logged, no request, not a failed message; it comes back the next
/// second and goes out then.
#[tokio::test]
async fn retries_wait_for_a_rate_limit_slot_untried() {
    let kit = DeliveryKit::new();
    let receiver = Receiver::start().await;
    receiver.script(vec![Behaviour::Status(500)]);
    let sub = kit.subscribe(&receiver.url, ContentType::Form, None).await;
    let sub = kit.set_rate_limit(&sub, 2).await;
    // Early in a second, so the batches below stay in it.
    kit.clock.set((kit.clock_secs() + 1) * 1000 + 100);
    let first = kit.job(&sub, 1);
    assert!(kit.run(&[first.clone(), kit.job(&sub, 2)]).await.is_empty());
    receiver.wait_for(2, WAIT).await;
    let (retry, _) = kit.queue.take_jobs().remove(0);
    assert_eq!(retry.attempt, 2);
    // The retry, due, in a second whose 2 slots are taken: back on the queue untried.
    let second = kit.clock_secs();
    let due_now = DeliveryJob {
        due_at: None,
        ..retry.clone()
    };
    assert!(kit.run(std::slice::from_ref(&due_now)).await.is_empty());
    let back = kit.queue.take_jobs();
    assert_eq!(back.len(), 1);
    let (waiting, delay) = &back[0];
    assert_eq!(
        (waiting.attempt, *delay),
        (2, 1),
        "same attempt, a second later"
    );
    assert_eq!(waiting.due_at, Some((second + 1) * 1000));
    assert_eq!(receiver.requests().len(), 2, "no request");
    assert_eq!(kit.log_of(&sub).await.len(), 2, "nothing logged");
    // The next second: it goes out, as attempt 2.
    kit.clock.set((second + 1) * 1000 + 100);
    assert!(kit.run(std::slice::from_ref(waiting)).await.is_empty());
    receiver.wait_for(3, WAIT).await;
    let log = kit.log_of(&sub).await;
    assert_eq!(
        (log[0].attempt, log[0].outcome),
        (2, AttemptOutcome::Delivered)
    );
    // Without a limit, no slot is taken at all.
    let plain = kit.subscribe(&receiver.url, ContentType::Form, None).await;
    let before = kit.limiter.calls();
    assert!(kit.run(&[kit.job(&plain, 9)]).await.is_empty());
    assert_eq!(
        kit.limiter.calls(),
        before,
        "an unlimited subscription takes no slot"
    );
}
