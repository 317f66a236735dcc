//! Lambda's SQS events, built the way the SQS event source builds them, from the record
//! shape `sam local generate-event sqs receive-message` produces.

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{Value, json};
use webhooks_core::queue::IncomingMessage;

pub const SQS_FIXTURE: &str = include_str!("../../infra/events/sqs-receive-message.json");

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
