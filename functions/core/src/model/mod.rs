//! The domain's values and rules, without I/O: who owns what ([`identity`]), ids and the
//! randomness they are drawn from, the platform's clock, the event catalogue, events,
//! subscriptions with their receiver URLs ([`url`]) and settings ([`receiver`]), delivery
//! jobs, and the address rules receivers must meet ([`network`]).

pub mod catalogue;
pub mod clock;
pub mod event;
pub mod identity;
pub mod ids;
pub mod job;
pub mod network;
pub mod random;
pub mod receiver;
pub mod subscription;
pub mod url;
