//! Everything the API needs, built once per process (per Lambda instance) and shared by
//! every request.

use std::sync::Arc;

use webhooks_core::clock::Clock;
use webhooks_core::config::Settings;
use webhooks_core::ids::IdGenerator;
use webhooks_core::store::SubscriptionStore;

use crate::guard::RateLimiter;

pub struct App {
    pub settings: Settings,
    pub store: Arc<dyn SubscriptionStore>,
    pub clock: Arc<dyn Clock>,
    pub ids: IdGenerator,
    pub limiter: RateLimiter,
}

impl App {
    pub fn new(
        settings: Settings,
        store: Arc<dyn SubscriptionStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let limiter = RateLimiter::new(settings.rate_limit_per_minute);
        Self {
            settings,
            store,
            clock,
            ids: IdGenerator::default(),
            limiter,
        }
    }
}
