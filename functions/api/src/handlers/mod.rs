//! One module per group of endpoints.

pub mod deliveries;
pub mod events;
pub mod subscriptions;
