//! The `webhooks-local` binary as a newcomer runs it: it prints where it listens and a
//! ready token, and serves the API with that token, on both backends.

mod common;

use std::process::Command;

use common::{Runner, spawn};

async fn create_and_list(r: &Runner) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/api/v0/webhooks/subscriptions", r.base);
    let created = http
        .post(&url)
        .bearer_auth(&r.token)
        .form(&[
            ("trigger_url", "http://127.0.0.1:9/hook"),
            ("event_id", "assign_task"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let listed: serde_json::Value = http
        .get(&url)
        .bearer_auth(&r.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["response"]["subscriptions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        listed["response"]["subscriptions"][0]["trigger_url"],
        "http://127.0.0.1:9/hook"
    );
}

#[tokio::test]
async fn prints_a_working_token_on_the_memory_backend() {
    let r = spawn(&[]);
    assert!(r.base.starts_with("http://127.0.0.1:"));
    create_and_list(&r).await;
}

#[tokio::test]
async fn uses_dynamodb_wherever_the_sdk_points() {
    let endpoint = webhooks_tests::moto::endpoint();
    let table = webhooks_tests::unique("binary");
    let r = spawn(&[
        ("WEBHOOKS_BACKEND", "aws"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("WEBHOOKS_SUBSCRIPTIONS_TABLE", &table),
    ]);
    create_and_list(&r).await;
    // The table was created in moto and holds the subscription.
    let sdk = webhooks_tests::moto::sdk_config().await;
    let scan = aws_sdk_dynamodb::Client::new(&sdk)
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    assert_eq!(scan.count(), 1);
}

#[test]
fn token_command_mints_tokens_the_runner_accepts() {
    let out = Command::new(env!("CARGO_BIN_EXE_webhooks-local"))
        .args([
            "token",
            "--sub",
            "42",
            "--deployment",
            "acme",
            "--scope",
            "",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    use webhooks_core::config::FromEnv;
    let settings = webhooks_core::config::Settings::from_lookup(
        &webhooks_core::config::Defaults::local(),
        |_| None,
    )
    .unwrap();
    let caller = settings.api.verifier.verify(token.trim()).unwrap();
    assert_eq!((caller.user_id, caller.deployment.as_str()), (42, "acme"));
    assert!(caller.scopes.is_empty());
}

#[test]
fn help_names_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_webhooks-local"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for name in [
        "PORT",
        "WEBHOOKS_BACKEND",
        "WEBHOOKS_JWT_SECRET",
        "WEBHOOKS_SECRET_KEY",
        "WEBHOOKS_LOCAL_VISIBILITY_SECS",
        "WEBHOOKS_ALLOW_NETWORKS",
        "TOKIO_WORKER_THREADS",
        "RUST_LOG",
        "token",
        "--sub",
        "--deployment",
        "--scope",
        "--pro",
        "--days",
    ] {
        assert!(help.contains(name), "--help should mention {name}");
    }
}

/// The binary run with `args` and `envs` fails as a usage error: exit code 2, nothing on
/// stdout, and a sentence on stderr that holds `named`.
fn refused(args: &[&str], envs: &[(&str, &str)], named: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_webhooks-local"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?} {envs:?}: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains(named),
        "{args:?} {envs:?}: {stderr}"
    );
    assert!(out.stdout.is_empty(), "{args:?} {envs:?}: nothing started");
}

/// A flag, command or value the runner does not know is refused before anything starts,
/// naming it, with exit code 2 (the usual code for a usage error).
#[test]
fn bad_flags_and_values_are_named_with_exit_code_2() {
    refused(&["--nope"], &[], "'--nope'");
    refused(&["serve"], &[], "'serve'");
    refused(&["token", "--pro", "maybe"], &[], "'maybe' for '--pro");
    refused(&["token", "--sub", "x"], &[], "'x' for '--sub");
    refused(&[], &[("PORT", "http")], "'http' for '--port");
    refused(
        &[],
        &[("WEBHOOKS_BACKEND", "mongo")],
        "'mongo' for '--backend",
    );
}
