//! The ports: what the stages need from the outside world, as traits with the records that
//! cross them. Adapters (in memory, on AWS, reqwest) implement them.

pub mod delivery_log;
pub mod http;
pub mod idempotency;
pub mod operator;
pub mod queue;
pub mod rate_limit;
pub mod secret;
pub mod store;
