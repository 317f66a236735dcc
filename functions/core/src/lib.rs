//! The core of the webhook platform: the domain, the ports the stages need, the stages
//! themselves, and the adapters that plug the ports into memory or AWS.
//!
//! **Layers**, lowest first; each module uses only its own layer and those below it, and no
//! two modules import each other, directly or around a loop (`infra/scripts/check-layers.py`
//! checks both in CI):
//!
//! 1. [`model`]: the domain's values and rules, no I/O: identities, ids, time, the event
//!    catalogue, events, subscriptions, delivery jobs, the address rules.
//! 2. [`security`]: sealing secrets at rest, signing deliveries, verifying API tokens.
//! 3. [`ports`]: the traits the stages talk through (store, queue, HTTP sender, delivery
//!    log, idempotency, operator channel) and the records that cross them.
//! 4. [`policy`]: pure decisions, answer in and next step out: retry schedule, breaker,
//!    what follows an attempt.
//! 5. [`observe`]: metrics and log set-up.
//! 6. [`stages`]: the use cases: fan-out, delivery, the owner's subscription service.
//! 7. [`config`]: each binary's settings, parsed from the environment.
//! 8. [`adapters`]: the ports in memory, on AWS, and the reqwest HTTP sender.
//!
//! Nothing below `adapters` knows about AWS or Lambda.

pub mod adapters;
pub mod config;
pub mod model;
pub mod observe;
pub mod policy;
pub mod ports;
pub mod security;
pub mod stages;
