//! Init time of each function binary, as Lambda counts it: from the process spawn to its
//! first request for an event (`/runtime/invocation/next`), release build, median of 7,
//! against moto. Each function runs with the environment `template.yaml` gives it, its
//! secrets in Secrets Manager, and again with the same secrets as plain variables (how
//! the stack passed them before they moved to Secrets Manager).
//!
//! The api function reads its secrets at its first request, not at init, so the bench
//! also times what a caller of a cold instance waits for: spawn to the answer of its
//! first request (a list of subscriptions), where those reads are paid.
//!
//! `cargo bench -p webhooks-tests --bench init` (it builds the three binaries itself).

use std::process::Command;
use std::time::Duration;

use webhooks_core::config::{DEV_JWT_SECRET, JWT_SECRET, SECRET_KEY};
use webhooks_tests::deployed::{Deployed, Function, SEALING_KEY};
use webhooks_tests::lambda_events::list_subscriptions_request;
use webhooks_tests::local_process::release_binary;

const RUNS: usize = 7;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() {
    let built = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--bins",
            "-p",
            "webhooks-api",
            "-p",
            "webhooks-fanout",
            "-p",
            "webhooks-delivery",
        ])
        .status()
        .expect("cargo runs");
    assert!(built.success(), "the function binaries build");
    let (api, fanout, delivery) = (
        release_binary("api"),
        release_binary("fanout"),
        release_binary("delivery"),
    );
    let functions = [
        Function {
            logical_id: "ApiFunction",
            binary: api,
        },
        Function {
            logical_id: "FanoutFunction",
            binary: fanout,
        },
        Function {
            logical_id: "DeliveryFunction",
            binary: delivery,
        },
    ];
    let stack = Deployed::start(&[], &[]).await;

    println!("function init: spawn to the first /next, median of {RUNS} (moto on loopback)");
    println!(
        "{:<18} {:>22} {:>22}",
        "function", "secrets from SM", "secrets as variables"
    );
    let mut inits = Vec::new();
    let (mut answered_sm, mut answered_plain) = (Vec::new(), Vec::new());
    for function in functions {
        let is_api = function.logical_id == "ApiFunction";
        let mut from_sm = Vec::new();
        let mut plain = Vec::new();
        for _ in 0..RUNS {
            let mut rt = stack.spawn_ungated(function, &[]).await;
            from_sm.push(rt.init_time().await);
            if is_api {
                answered_sm.push(rt.time_to_answer(list_subscriptions_request()).await);
            }
            drop(rt);
            // The same environment with the secrets' values instead of their ARNs.
            let env = stack.environment(function);
            let mut extra: Vec<(&str, &str)> = Vec::new();
            for (k, _) in &env {
                match k.as_str() {
                    "WEBHOOKS_SECRET_KEY_ARN" => {
                        extra.extend([(k.as_str(), ""), (SECRET_KEY, SEALING_KEY)])
                    }
                    "WEBHOOKS_JWT_SECRET_ARN" => {
                        extra.extend([(k.as_str(), ""), (JWT_SECRET, DEV_JWT_SECRET)])
                    }
                    _ => {}
                }
            }
            let mut rt = stack.spawn_ungated(function, &extra).await;
            plain.push(rt.init_time().await);
            if is_api {
                answered_plain.push(rt.time_to_answer(list_subscriptions_request()).await);
            }
        }
        let (from_sm, plain) = (median(from_sm), median(plain));
        println!(
            "{:<18} {:>19.1} ms {:>19.1} ms",
            function.logical_id,
            from_sm.as_secs_f64() * 1000.0,
            plain.as_secs_f64() * 1000.0
        );
        inits.push((function.logical_id, from_sm, plain));
    }
    println!(
        "{:<18} {:>19.1} ms {:>19.1} ms",
        "api first answer",
        median(answered_sm).as_secs_f64() * 1000.0,
        median(answered_plain).as_secs_f64() * 1000.0
    );
    let init = |id: &str| inits.iter().find(|(f, _, _)| *f == id).expect("timed");
    let (api, fanout) = (init("ApiFunction"), init("FanoutFunction"));
    println!(
        "{:<18} {:>22.2} {:>22.2}   (goal: at most 1.2)",
        "api ÷ fan-out init",
        api.1.as_secs_f64() / fanout.1.as_secs_f64(),
        api.2.as_secs_f64() / fanout.2.as_secs_f64()
    );
}
