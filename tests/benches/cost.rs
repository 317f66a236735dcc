//! The AWS bill per million deliveries, measured through the real adapters on moto: one
//! subscriber per event, and many (events for `"all"`); then the fan-out's read units
//! for full batches of events each visible to one user. Sizes from `COST_*` variables
//! (see `webhooks_tests::cost::Sizes`); prices and method in `docs/cost.md`.
//!
//! `cargo bench -p webhooks-tests --bench cost`

#[tokio::main]
async fn main() {
    webhooks_tests::cost::report().await;
}
