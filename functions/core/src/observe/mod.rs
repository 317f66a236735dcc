//! What the platform tells its operator: CloudWatch metrics and the log set-up.

pub mod metrics;
pub mod telemetry;
