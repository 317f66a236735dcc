//! One module per group of endpoints.

pub mod events;
pub mod subscriptions;
