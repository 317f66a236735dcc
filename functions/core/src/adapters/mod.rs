//! Adapters for the ports: in memory (the local runner and tests), on AWS, and the HTTP
//! sender on reqwest.

pub mod aws;
pub mod http;
pub mod memory;
