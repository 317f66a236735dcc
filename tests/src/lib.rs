//! Shared pieces of the end-to-end tests: a real moto server, the store contract suite,
//! and a client for the local runner.

pub mod client;
pub mod moto;
pub mod runner;
pub mod store_suite;

/// A short random suffix for names (tables, queues) that must not collide between tests.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", webhooks_core::crypto::random_u64())
}
