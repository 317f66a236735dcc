//! Lambda's events as its sources build them: SQS batches, from the record shape
//! `sam local generate-event sqs receive-message` produces, and API Gateway (HTTP API,
//! payload 2.0) requests, from the repository's sample event.

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{Value, json};
use webhooks_core::ports::queue::IncomingMessage;

pub const SQS_FIXTURE: &str = include_str!("../../infra/events/sqs-receive-message.json");
pub const API_FIXTURE: &str = include_str!("../../infra/events/api-create-subscription.json");

/// An API Gateway request with a bearer token, as the api function gets it when no
/// authorizer runs in front of it: `body`, when given, as JSON text.
pub fn api_request(method: &str, path: &str, bearer: &str, body: Option<&Value>) -> Value {
    let mut e: Value = serde_json::from_str(API_FIXTURE).expect("the sample event parses");
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(path);
    if let Some(context) = e["requestContext"].as_object_mut() {
        context.remove("authorizer");
    }
    e["headers"]["authorization"] = json!(format!("Bearer {bearer}"));
    match body {
        Some(b) => {
            e["body"] = json!(b.to_string());
            e["isBase64Encoded"] = json!(false);
        }
        None => {
            if let Some(fields) = e.as_object_mut() {
                fields.remove("body");
            }
        }
    }
    e
}

/// `GET` of the subscriptions list with user 1 of `hq`'s token (the tests' HS256 secret):
/// a request any deployment answers, for timing a cold instance's first answer.
pub fn list_subscriptions_request() -> Value {
    let bearer = crate::client::token(&crate::client::claims(1, "hq"));
    api_request("GET", "/api/v0/webhooks/subscriptions", &bearer, None)
}

/// A message as SQS hands it over the first time.
pub fn message(id: &str, body: String) -> IncomingMessage {
    IncomingMessage {
        message_id: id.into(),
        body,
        receive_count: 1,
        attributes: Default::default(),
    }
}

/// An `SqsEvent` carrying these messages.
pub fn sqs_event(messages: &[IncomingMessage]) -> SqsEvent {
    let fixture: Value = serde_json::from_str(SQS_FIXTURE).unwrap();
    let template = fixture["Records"][0].clone();
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let mut r = template.clone();
            r["messageId"] = json!(m.message_id);
            r["receiptHandle"] = json!(format!("receipt-{}", m.message_id));
            r["body"] = json!(m.body);
            r["attributes"]["ApproximateReceiveCount"] = json!(m.receive_count.to_string());
            r["messageAttributes"] = m
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), json!({"stringValue": v, "dataType": "String"})))
                .collect::<serde_json::Map<_, _>>()
                .into();
            r
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}
