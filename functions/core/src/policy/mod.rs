//! Pure decisions: given an answer, the next step. No I/O; unit tests reach every branch.

pub mod access;
pub mod after_attempt;
pub mod breaker;
pub mod rate_limit;
pub mod retry;
pub mod token;
