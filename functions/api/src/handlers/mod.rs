//! One module per group of endpoints.

pub mod subscriptions;
