//! The API's publish path alone, in process on the memory adapters: CPU time per
//! `POST /api/v0/webhooks/events` of 10 events (token check, parse, queue), the handler as
//! the local runner and the Lambda call it, with no HTTP server around it.
//!
//! `cargo bench -p webhooks-tests --bench publish`

use std::time::Instant;

use bytes::Bytes;
use serde_json::json;
use webhooks_core::config::{Defaults, FromEnv, Settings};
use webhooks_core::model::clock::SystemClock;
use webhooks_local::{Backend, compose, default_claims, mint_token};
use webhooks_tests::fanout_kit::drain;

fn request(token: &str, body: &Bytes) -> http::Request<Bytes> {
    http::Request::post("/api/v0/webhooks/events")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.clone())
        .expect("a valid request")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // No per-user limit: the bench publishes far more than 600 requests a minute.
    let settings = Settings::from_lookup(&Defaults::local(), |name| {
        (name == "WEBHOOKS_RATE_LIMIT_PER_MINUTE").then(|| "0".to_owned())
    })
    .expect("valid settings");
    let secret = settings
        .api
        .jwt_secret
        .clone()
        .expect("a development secret");
    let platform = compose(&Backend::Memory, settings).await.expect("composes");
    let token = mint_token(&secret, &default_claims(&SystemClock));
    let events: Vec<_> = (0..10)
        .map(|i| {
            json!({"event_id": "create_invoice", "object_id": i,
                   "resource_url": format!("https://hq.example.com/api/v0/invoices/{i}"),
                   "visible_to": [1]})
        })
        .collect();
    let body = Bytes::from(serde_json::to_vec(&events).unwrap());
    let runs = std::env::var("PUBLISH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000usize);
    let mut spent = std::time::Duration::ZERO;
    for round in 0..runs {
        let started = Instant::now();
        let answer = webhooks_api::handle(&platform.app, request(&token, &body)).await;
        spent += started.elapsed();
        assert_eq!(answer.status(), 200);
        if round % 50 == 49 {
            // Keep the queue short, as the fan-out does.
            drain(platform.events.receiver.as_ref()).await;
        }
    }
    println!(
        "publish of 10 events through the API handler: {:.1} µs per request ({runs} runs)",
        spent.as_secs_f64() * 1e6 / runs as f64
    );
}
