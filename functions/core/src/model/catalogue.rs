//! The event catalogue: which events a subscription may name. It is data, loaded from a
//! JSON file an installation can replace; the default is Accelo's published set. The
//! platform's own operational events (`webhook_subscription_removed`,
//! `webhook_delivery_failed`, see `crate::stages::notices`) are in every catalogue: an
//! installation's file need not name them.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventType {
    pub event_id: String,
    pub event_title: String,
    pub trigger_table: String,
    pub trigger_type: String,
}

#[derive(Debug, Clone)]
pub struct Catalogue {
    types: Vec<EventType>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("the event catalogue is not a JSON array of event types: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("the event catalogue names `{0}` twice")]
    Duplicate(String),
    #[error("the event catalogue has an event with an empty field")]
    Empty,
}

/// The operational event that tells an owner a subscription was removed automatically.
pub const SUBSCRIPTION_REMOVED: &str = "webhook_subscription_removed";
/// The operational event that tells an owner a delivery gave up.
pub const DELIVERY_FAILED: &str = "webhook_delivery_failed";

/// The platform's own events: id, title, trigger type (the table is
/// `webhook_subscription`).
pub const OPERATIONAL: [(&str, &str, &str); 2] = [
    (
        SUBSCRIPTION_REMOVED,
        "Webhook subscription removed automatically",
        "update",
    ),
    (DELIVERY_FAILED, "Webhook delivery failed", "update"),
];

/// The default catalogue, shipped with the code.
pub const DEFAULT_CATALOGUE_JSON: &str = include_str!("../../event-types.json");

impl Default for Catalogue {
    fn default() -> Self {
        Self::from_json(DEFAULT_CATALOGUE_JSON).expect("the embedded catalogue is valid")
    }
}

impl Catalogue {
    pub fn from_json(json: &str) -> Result<Self, CatalogueError> {
        let types: Vec<EventType> = serde_json::from_str(json)?;
        let mut seen = HashSet::new();
        for t in &types {
            if [
                &t.event_id,
                &t.event_title,
                &t.trigger_table,
                &t.trigger_type,
            ]
            .iter()
            .any(|f| f.is_empty())
            {
                return Err(CatalogueError::Empty);
            }
            if !seen.insert(t.event_id.as_str()) {
                return Err(CatalogueError::Duplicate(t.event_id.clone()));
            }
        }
        let mut types = types;
        for (event_id, event_title, trigger_type) in OPERATIONAL {
            if !types.iter().any(|t| t.event_id == event_id) {
                types.push(EventType {
                    event_id: event_id.into(),
                    event_title: event_title.into(),
                    trigger_table: "webhook_subscription".into(),
                    trigger_type: trigger_type.into(),
                });
            }
        }
        Ok(Self { types })
    }

    pub fn types(&self) -> &[EventType] {
        &self.types
    }

    pub fn get(&self, event_id: &str) -> Option<&EventType> {
        self.types.iter().find(|t| t.event_id == event_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_catalogue_is_accelos_twenty_events_and_the_platforms_two() {
        let c = Catalogue::default();
        assert_eq!(c.types().len(), 22);
        assert_eq!(
            c.get("webhook_subscription_removed").unwrap().trigger_table,
            "webhook_subscription"
        );
        let t = c.get("update_request_status").unwrap();
        assert_eq!(t.event_title, "Request status changed");
        assert_eq!(
            (t.trigger_table.as_str(), t.trigger_type.as_str()),
            ("request", "update")
        );
        assert_eq!(c.get("create_sale").unwrap().trigger_table, "prospect");
        assert!(c.get("nope").is_none());
    }

    #[test]
    fn duplicates_and_garbage_are_refused() {
        let one =
            r#"{"event_id":"a","event_title":"A","trigger_table":"t","trigger_type":"create"}"#;
        assert!(Catalogue::from_json(&format!("[{one},{one}]")).is_err());
        assert!(Catalogue::from_json("{}").is_err());
        assert_eq!(
            Catalogue::from_json(&format!("[{one}]"))
                .unwrap()
                .types()
                .len(),
            3,
            "one, and the platform's two"
        );
    }
}
