//! An IAM gate in front of moto: a function binary's AWS endpoint points here, and every
//! request passes on to moto only if the function's role (see [`crate::stack::Role`])
//! allows its action on its resource, the way AWS authorises it. A refused request gets
//! the `AccessDeniedException` AWS would send, and every request is recorded, so a test
//! can assert that nothing was refused and that every grant of the role was used.
//!
//! It reads the JSON protocols the SDKs speak (`X-Amz-Target`): DynamoDB, SQS and
//! Secrets Manager, and SNS's query protocol (`Action=Publish`). A request it cannot
//! attribute is refused and recorded as such.
//!
//! A gate started with [`IamGate::start_metered`] also counts what every allowed request
//! costs, in a [`Meter`] it may share with other gates (see [`crate::aws_meter`]).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::aws_meter::{Exchange, Meter};
use crate::stack::{ACCOUNT, REGION, Role, Statement};

/// A meter and the name the gate's requests are counted under.
type Metering = Option<(Arc<Meter>, String)>;

/// One AWS request a binary made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The IAM action, e.g. `dynamodb:PutItem` (batch APIs count as their IAM action:
    /// `SendMessageBatch` is `sqs:SendMessage`).
    pub action: String,
    pub resource: String,
    pub allowed: bool,
}

pub struct IamGate {
    pub endpoint: String,
    pub role: Role,
    calls: Arc<Mutex<Vec<Call>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for IamGate {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl IamGate {
    /// A gate holding `role`, passing allowed requests on to `upstream` (moto).
    pub async fn start(upstream: &str, role: Role) -> IamGate {
        Self::start_with(upstream, role, None).await
    }

    /// A gate like [`IamGate::start`] that also counts every allowed request in `meter`,
    /// under `function`.
    pub async fn start_metered(
        upstream: &str,
        role: Role,
        meter: Arc<Meter>,
        function: &str,
    ) -> IamGate {
        Self::start_with(upstream, role, Some((meter, function.to_owned()))).await
    }

    async fn start_with(upstream: &str, role: Role, metering: Metering) -> IamGate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new((
            role.clone(),
            upstream.to_owned(),
            reqwest::Client::new(),
            metering,
        ));
        let recorded = calls.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (shared, recorded) = (shared.clone(), recorded.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (shared, recorded) = (shared.clone(), recorded.clone());
                        async move {
                            gate(req, &shared.0, &shared.1, &shared.2, &shared.3, &recorded).await
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        IamGate {
            endpoint,
            role,
            calls,
            server,
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Panics, listing them, if any request was refused.
    pub fn assert_nothing_refused(&self) {
        let refused: Vec<Call> = self.calls().into_iter().filter(|c| !c.allowed).collect();
        assert!(
            refused.is_empty(),
            "{} refused by its role: {refused:#?}",
            self.role.name
        );
    }

    /// Panics if some action on some resource that the role's own statements grant was
    /// never used: a grant no code needs. The AWS managed policies the role carries are
    /// not held to it: Lambda itself uses them, not the function's code (logs, the SQS
    /// poller, X-Ray, and with `SubnetIds` the network interfaces of
    /// `AWSLambdaVPCAccessExecutionRole`), so no call through the gate could.
    pub fn assert_every_grant_used(&self) {
        let calls = self.calls();
        let mut unused = Vec::new();
        for s in self.role.inline.iter().filter(|s| s.allow) {
            for action in &s.actions {
                for resource in &s.resources {
                    let used = calls.iter().any(|c| {
                        c.allowed
                            && glob(action, &c.action, true)
                            && glob(resource, &c.resource, false)
                    });
                    if !used {
                        unused.push(format!(
                            "{} {action} on {resource}",
                            s.sid.as_deref().unwrap_or("-")
                        ));
                    }
                }
            }
        }
        assert!(
            unused.is_empty(),
            "{} grants what no call used: {unused:#?}",
            self.role.name
        );
    }

    /// The distinct (action, resource) pairs used, for the notes.
    pub fn summary(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .calls()
            .into_iter()
            .map(|c| (c.action, c.resource))
            .collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }
}

/// Authorises one request and forwards it, or refuses it.
async fn gate(
    req: Request<hyper::body::Incoming>,
    role: &Role,
    upstream: &str,
    client: &reqwest::Client,
    metering: &Metering,
    calls: &Mutex<Vec<Call>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let requests = if target.is_empty() {
        attribute_query(&body)
    } else {
        attribute(&target, &json)
    };
    let mut refused = None;
    {
        let mut calls = calls.lock().unwrap();
        if requests.is_empty() {
            calls.push(Call {
                action: format!("unknown:{target}"),
                resource: "*".into(),
                allowed: false,
            });
            refused = Some(format!("unknown:{target}"));
        }
        for (action, resource) in requests {
            let allowed = allows(role, &action, &resource);
            if !allowed && refused.is_none() {
                refused = Some(format!(
                    "User: arn:aws:sts::{ACCOUNT}:assumed-role/{}/function is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action",
                    role.name
                ));
            }
            calls.push(Call {
                action,
                resource,
                allowed,
            });
        }
    }
    if let Some(message) = refused {
        let body = serde_json::json!({"__type": "AccessDeniedException", "message": message});
        return Ok(Response::builder()
            .status(400)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amzn-errortype", "AccessDeniedException")
            .header("x-amzn-query-error", "AccessDenied;Sender")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap());
    }

    let prepared = match metering {
        Some((meter, function)) => {
            meter.begin(function);
            Some(meter.before(&target, &json).await)
        }
        None => None,
    };
    let request_bytes = body.len();
    let url = format!(
        "{upstream}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut forward = client.request(parts.method.clone(), url).body(body);
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            forward = forward.header(name, value);
        }
    }
    let answer = match forward.send().await {
        Ok(a) => a,
        Err(e) => {
            if let Some((meter, function)) = metering {
                meter.end(function);
            }
            return Ok(Response::builder()
                .status(502)
                .body(Full::new(Bytes::from(e.to_string())))
                .unwrap());
        }
    };
    let mut out = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != hyper::header::CONTENT_LENGTH && name != hyper::header::TRANSFER_ENCODING {
            out = out.header(name, value);
        }
    }
    let status = answer.status().as_u16();
    let bytes = answer.bytes().await.unwrap_or_default();
    if let (Some((meter, function)), Some(prepared)) = (metering, prepared) {
        let exchange = Exchange {
            target: &target,
            body: &json,
            request_bytes,
            status,
            answer: &bytes,
        };
        meter.after(function, exchange, prepared).await;
        meter.end(function);
    }
    Ok(out.body(Full::new(bytes)).unwrap())
}

/// The IAM (action, resource) pairs one request needs.
fn attribute(target: &str, body: &Value) -> Vec<(String, String)> {
    let Some((service, operation)) = target.split_once('.') else {
        return Vec::new();
    };
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    let table = |name: &str| format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}");
    match service {
        s if s.starts_with("DynamoDB_") => match operation {
            "BatchGetItem" | "BatchWriteItem" => {
                let action = if operation == "BatchGetItem" {
                    "BatchGetItem"
                } else {
                    "BatchWriteItem"
                };
                body["RequestItems"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, _)| (format!("dynamodb:{action}"), table(name)))
                    .collect()
            }
            "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|item| {
                    let (kind, inner) = item.as_object()?.iter().next()?;
                    let action = match kind.as_str() {
                        "Put" => "PutItem",
                        "Update" => "UpdateItem",
                        "Delete" => "DeleteItem",
                        "Get" => "GetItem",
                        _ => "ConditionCheckItem",
                    };
                    Some((
                        format!("dynamodb:{action}"),
                        table(inner["TableName"].as_str()?),
                    ))
                })
                .collect(),
            _ => {
                let mut resource = table(text("TableName"));
                if !text("IndexName").is_empty() {
                    resource = format!("{resource}/index/{}", text("IndexName"));
                }
                vec![(format!("dynamodb:{operation}"), resource)]
            }
        },
        "AmazonSQS" => {
            let action = operation
                .strip_suffix("Batch")
                .unwrap_or(operation)
                .to_owned();
            let name = if operation == "GetQueueUrl" {
                text("QueueName").to_owned()
            } else {
                text("QueueUrl")
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            };
            vec![(
                format!("sqs:{action}"),
                format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"),
            )]
        }
        "secretsmanager" => {
            let id = text("SecretId");
            let arn = if id.starts_with("arn:") {
                id.to_owned()
            } else {
                format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{id}")
            };
            vec![(format!("secretsmanager:{operation}"), arn)]
        }
        _ => Vec::new(),
    }
}

/// The action and resource of a request in the AWS query protocol (form-encoded, with an
/// `Action`), which SNS speaks.
fn attribute_query(body: &[u8]) -> Vec<(String, String)> {
    let form: std::collections::HashMap<String, String> =
        form_urlencoded::parse(body).into_owned().collect();
    match form.get("Action").map(String::as_str) {
        Some("Publish") => vec![(
            "sns:Publish".to_owned(),
            form.get("TopicArn").cloned().unwrap_or_default(),
        )],
        _ => Vec::new(),
    }
}

/// IAM's decision: an explicit deny wins, else any allow, else denied.
fn allows(role: &Role, action: &str, resource: &str) -> bool {
    let matches = |s: &Statement| {
        s.actions.iter().any(|a| glob(a, action, true))
            && s.resources.iter().any(|r| glob(r, resource, false))
    };
    let all = || role.inline.iter().chain(&role.managed);
    !all().any(|s| !s.allow && matches(s)) && all().any(|s| s.allow && matches(s))
}

/// IAM's wildcard match: `*` any run, `?` any one character; actions ignore case.
pub fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(statements: Vec<Statement>) -> Role {
        Role {
            name: "TestRole".into(),
            inline: statements,
            managed: vec![],
        }
    }

    fn allow(actions: &[&str], resources: &[&str]) -> Statement {
        Statement {
            sid: None,
            allow: true,
            actions: actions.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_decision_follows_iam() {
        let table = "arn:aws:dynamodb:us-east-1:123456789012:table/t";
        let r = role(vec![
            allow(&["dynamodb:PutItem"], &[table]),
            allow(&["sqs:*"], &["arn:aws:sqs:us-east-1:123456789012:q-*"]),
        ]);
        assert!(allows(&r, "dynamodb:PutItem", table));
        assert!(allows(&r, "DynamoDB:putitem", table), "actions ignore case");
        assert!(!allows(&r, "dynamodb:UpdateItem", table));
        assert!(
            !allows(&r, "dynamodb:PutItem", &format!("{table}/index/i")),
            "a table grant is not an index grant"
        );
        assert!(allows(
            &r,
            "sqs:SendMessage",
            "arn:aws:sqs:us-east-1:123456789012:q-1"
        ));
        assert!(!allows(
            &r,
            "sqs:SendMessage",
            "arn:aws:sqs:us-east-1:123456789012:other"
        ));
        let mut denied = r.clone();
        denied.inline.push(Statement {
            allow: false,
            ..allow(&["sqs:SendMessage"], &["*"])
        });
        assert!(!allows(
            &denied,
            "sqs:SendMessage",
            "arn:aws:sqs:us-east-1:123456789012:q-1"
        ));
    }

    #[test]
    fn requests_are_attributed_to_actions_and_resources() {
        let body = serde_json::json!({"TableName": "subs", "IndexName": "by_event"});
        assert_eq!(
            attribute("DynamoDB_20120810.Query", &body),
            vec![(
                "dynamodb:Query".to_owned(),
                "arn:aws:dynamodb:us-east-1:123456789012:table/subs/index/by_event".to_owned()
            )]
        );
        let body = serde_json::json!({"QueueUrl": "http://127.0.0.1:5000/123456789012/jobs"});
        assert_eq!(
            attribute("AmazonSQS.SendMessageBatch", &body),
            vec![(
                "sqs:SendMessage".to_owned(),
                "arn:aws:sqs:us-east-1:123456789012:jobs".to_owned()
            )]
        );
        let body = serde_json::json!({"RequestItems": {"a": {}, "b": {}}});
        assert_eq!(attribute("DynamoDB_20120810.BatchGetItem", &body).len(), 2);
        assert!(attribute("", &Value::Null).is_empty());
    }
}
