//! Shared pieces of the end-to-end tests: a real moto server, the store contract suite,
//! and a client for the local runner.

pub mod aws_meter;
pub mod client;
pub mod cost;
pub mod counting;
pub mod delivery_kit;
pub mod delivery_log_suite;
pub mod deployed;
pub mod fanout_kit;
pub mod iam_gate;
pub mod idempotency_suite;
pub mod lambda_events;
pub mod lambda_runtime;
pub mod local_process;
pub mod moto;
pub mod queue_suite;
pub mod receiver;
pub mod runner;
pub mod stack;
pub mod store_suite;

/// A short random suffix for names (tables, queues) that must not collide between tests.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{:016x}",
        webhooks_core::model::random::random_u64()
    )
}
