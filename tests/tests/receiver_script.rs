//! `infra/scripts/receiver.py`, the README's receiver, in both its modes. As the product's
//! access check (`--access`), it answers a question signed by the Standard Webhooks
//! library under the installation's secret with the users it allows (all of those asked
//! about without `--allow`), and 401 to a question whose signature does not verify. As a
//! receiver, it still answers a delivery 200.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The script, listening on a free port until dropped.
struct Script {
    child: Child,
    url: String,
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Script {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/scripts/receiver.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the script printed {first:?}"))
        .to_owned();
    // Read what it prints next, as a terminal would: a closed pipe would fail its prints.
    std::thread::spawn(move || lines.for_each(drop));
    Script { child, url }
}

/// A question about object 123 for these users, signed under `secret`.
async fn ask(script: &Script, users: Value, secret: &str) -> (u16, Value) {
    let body = json!({
        "deployment": "hq",
        "event_id": "assign_task",
        "object_id": 123,
        "resource_url": "https://hq.example.com/api/v0/tasks/123",
        "users": users,
    })
    .to_string();
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = "msg_question-1";
    let signature = standardwebhooks::Webhook::new(secret)
        .unwrap()
        .sign(id, timestamp, body.as_bytes())
        .unwrap();
    let answer = reqwest::Client::new()
        .post(&script.url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let tree = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    (status, tree)
}

#[tokio::test]
async fn as_the_access_check_it_names_the_allowed_users_asked_about() {
    let script = start(&["--access", "--secret", SECRET, "--allow", "1,7"]);
    assert!(script.url.ends_with("/access"), "{}", script.url);
    let (status, answer) = ask(&script, json!([1, 7, 12]), SECRET).await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"visible_to": [1, 7]}));
    // Numeric strings are the same users, answered as asked; an allowed user not asked
    // about is not named.
    let (status, answer) = ask(&script, json!(["7", "12"]), SECRET).await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"visible_to": ["7"]}));
}

#[tokio::test]
async fn as_the_access_check_without_allow_it_names_everyone_asked_about() {
    let script = start(&["--access", "--secret", SECRET]);
    let (status, answer) = ask(&script, json!([1, 7, 12]), SECRET).await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"visible_to": [1, 7, 12]}));
}

#[tokio::test]
async fn as_the_access_check_it_refuses_a_question_signed_with_another_secret() {
    let script = start(&["--access", "--secret", SECRET]);
    let other = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";
    let (status, _) = ask(&script, json!([1, 7, 12]), other).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn as_a_receiver_it_still_answers_deliveries() {
    let script = start(&["--secret", "my-signing-secret"]);
    assert!(script.url.ends_with("/hook"), "{}", script.url);
    let answer = reqwest::Client::new()
        .post(&script.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-accelo-event", "assign_task")
        .body("id=123")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
}
