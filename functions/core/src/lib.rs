//! The core of the webhook platform: the domain (subscriptions, event types, identity),
//! the ports the stages need (store, clock) and their adapters (in-memory, DynamoDB).
//!
//! Nothing in the domain modules knows about AWS or Lambda; the `adapters` module is the
//! only place that speaks to an AWS SDK.

pub mod adapters;
pub mod after_attempt;
pub mod auth;
pub mod breaker;
pub mod catalogue;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod delivery;
pub mod delivery_log;
pub mod event;
pub mod fanout;
pub mod http;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod job;
pub mod metrics;
pub mod network;
pub mod notices;
pub mod operator;
pub mod queue;
pub mod retry;
pub mod service;
pub mod signing;
pub mod stage;
pub mod store;
pub mod subscription;
pub mod telemetry;
