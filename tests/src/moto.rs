//! moto's server, speaking DynamoDB and SQS on 127.0.0.1.
//!
//! `infra/scripts/test.sh` starts one and exports `MOTO_ENDPOINT`; without it (a plain
//! `cargo test`), the first test that needs moto starts a private one for this test
//! binary, which stops when the binary exits.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static ENDPOINT: OnceLock<String> = OnceLock::new();

/// The endpoint of a running moto server.
pub fn endpoint() -> &'static str {
    ENDPOINT.get_or_init(|| match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => spawn_private(),
    })
}

/// An AWS SDK configuration that reaches moto.
pub async fn sdk_config() -> aws_config::SdkConfig {
    webhooks_core::adapters::aws::emulator_config(endpoint()).await
}

fn moto_binary() -> PathBuf {
    if let Ok(path) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/tools/bin/moto_server");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("moto_server")
    }
}

fn spawn_private() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let moto = moto_binary();
    // A watchdog in Python runs moto and kills it as soon as this test process is gone.
    let watchdog = "import os, subprocess, sys, time\n\
        parent = os.getppid()\n\
        p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
        while p.poll() is None and os.getppid() == parent:\n    time.sleep(0.3)\n\
        p.kill()\n";
    // Never waited on: the watchdog lives as long as this test binary and ends with it.
    #[allow(clippy::zombie_processes)]
    Command::new("python3")
        .args(["-c", watchdog])
        .arg(&moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {moto:?} ({e}); run infra/scripts/test.sh, which installs moto")
        });
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto did not start on {url}; is `moto[server]` installed?"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    url
}

/// Asserts that `table` has TTL enabled on `expires_at`.
/// Every item of a table as one text (a `Scan`, debug-printed): what a read of the table
/// alone reveals.
pub async fn scan_text(table: &str) -> String {
    let scan = aws_sdk_dynamodb::Client::new(&sdk_config().await)
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("the table scans");
    format!("{:?}", scan.items())
}

pub async fn assert_ttl_on_expires_at(sdk: &aws_config::SdkConfig, table: &str) {
    let described = aws_sdk_dynamodb::Client::new(sdk)
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let ttl = described
        .time_to_live_description()
        .expect("a TTL description");
    assert_eq!(
        ttl.time_to_live_status(),
        Some(&aws_sdk_dynamodb::types::TimeToLiveStatus::Enabled)
    );
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
}

/// An SNS topic on moto whose messages land, raw, in an SQS queue of their own: the
/// topic's ARN and the queue to read them from. (SNS speaks the query protocol; two form
/// posts are all it takes.)
pub async fn sns_topic_into_queue(
    name: &str,
) -> (String, webhooks_core::adapters::aws::sqs::SqsQueue) {
    use webhooks_core::adapters::aws::sqs::SqsQueue;
    let http = reqwest::Client::new();
    let post = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        async move {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            let answer = http
                .post(endpoint())
                .header("content-type", "application/x-www-form-urlencoded")
                // moto picks the service from the credential scope.
                .header(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=test/20261128/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=0",
                )
                .body(body)
                .send()
                .await
                .expect("moto answers");
            assert!(answer.status().is_success(), "{}", answer.status());
            answer.text().await.unwrap()
        }
    };
    let created = post(vec![
        ("Action", "CreateTopic".into()),
        ("Version", "2010-03-31".into()),
        ("Name", name.to_owned()),
    ])
    .await;
    let arn = created
        .split("<TopicArn>")
        .nth(1)
        .and_then(|rest| rest.split("</TopicArn>").next())
        .expect("a topic ARN")
        .to_owned();
    let sdk = sdk_config().await;
    let queue_name = format!("{name}-inbox");
    let queue = SqsQueue::ensure(SqsQueue::client(&sdk), &queue_name, 30, None)
        .await
        .unwrap();
    post(vec![
        ("Action", "Subscribe".into()),
        ("Version", "2010-03-31".into()),
        ("TopicArn", arn.clone()),
        ("Protocol", "sqs".into()),
        (
            "Endpoint",
            format!("arn:aws:sqs:us-east-1:123456789012:{queue_name}"),
        ),
        ("Attributes.entry.1.key", "RawMessageDelivery".into()),
        ("Attributes.entry.1.value", "true".into()),
    ])
    .await;
    (arn, queue)
}

/// Creates a secret in moto's Secrets Manager and returns its ARN.
pub async fn create_secret(name: &str, value: &str) -> String {
    let sdk = sdk_config().await;
    let made = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("moto creates the secret");
    made.arn().expect("an ARN").to_owned()
}

/// Gives an existing secret (by ARN or name) a new value.
pub async fn set_secret_value(id: &str, value: &str) {
    let sdk = sdk_config().await;
    aws_sdk_secretsmanager::Client::new(&sdk)
        .put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await
        .expect("moto sets the secret's value");
}
