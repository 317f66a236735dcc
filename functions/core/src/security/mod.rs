//! Secrets and signatures: subscription secrets sealed at rest and keyed HMACs
//! ([`crypto`]), the signature headers of a delivery ([`signing`]), and API bearer tokens
//! ([`auth`]).

pub mod auth;
pub mod crypto;
pub mod signing;
