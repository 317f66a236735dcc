//! The use cases, as services over the ports: the fan-out and delivery stages that the
//! queues feed ([`batch`]), the owner's subscription service, the operational notices
//! both raise, and the recovery tasks they share.

pub mod access;
pub mod batch;
pub mod delivery;
pub mod fanout;
pub mod notices;
pub mod recovery;
pub mod service;
pub mod token;
