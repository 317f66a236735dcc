//! Who is calling and whether they may: bearer tokens (or authorizer claims), the pro
//! gate, the publish scope and the per-user rate limit.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value};
use webhooks_core::model::identity::Caller;
use webhooks_core::security::auth::{AuthError, TokenVerifier};

use crate::envelope::{ApiError, Status};

/// Claims that an API Gateway authorizer verified, put on the request by the Lambda adapter.
#[derive(Debug, Clone)]
pub struct AuthorizerClaims(pub Map<String, Value>);

pub fn authenticate(
    verifier: &TokenVerifier,
    req: &http::Request<bytes::Bytes>,
) -> Result<Caller, ApiError> {
    let result = if let Some(AuthorizerClaims(claims)) = req.extensions().get::<AuthorizerClaims>()
    {
        verifier.admit_verified_claims(claims)
    } else {
        match req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or_default())
        {
            None | Some("") => Err(AuthError::Missing),
            Some(value) => match value.split_once(' ') {
                Some((scheme, token))
                    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                {
                    verifier.verify(token.trim())
                }
                _ => Err(AuthError::Missing),
            },
        }
    };
    result.map_err(|e| ApiError::new(Status::InvalidClient, e.to_string()))
}

/// A fixed-window count of requests per user and minute. Each Lambda instance keeps its
/// own, so on AWS the limit is per instance; API Gateway throttling caps the whole API.
pub struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, caller: &Caller, now_secs: i64) -> Result<(), ApiError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let window = now_secs.div_euclid(60);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 10_000 {
            windows.retain(|_, (w, _)| *w == window);
        }
        let entry = windows
            .entry(format!("{}#{}", caller.deployment, caller.user_id))
            .or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
        if entry.1 > self.per_minute {
            let mut e = ApiError::new(
                Status::TooManyRequests,
                format!(
                    "more than {} requests in a minute; retry after the Retry-After seconds",
                    self.per_minute
                ),
            );
            e.retry_after = Some((60 - now_secs.rem_euclid(60)) as u64);
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhooks_core::model::identity::Deployment;

    fn caller(id: u64) -> Caller {
        Caller {
            user_id: id,
            deployment: Deployment::parse("hq").unwrap(),
            name: String::new(),
            email: String::new(),
            pro: false,
            scopes: vec![],
        }
    }

    #[test]
    fn the_limit_counts_per_user_and_resets_each_minute() {
        let limiter = RateLimiter::new(2);
        assert!(limiter.check(&caller(1), 120).is_ok());
        assert!(limiter.check(&caller(1), 121).is_ok());
        let e = limiter.check(&caller(1), 130).unwrap_err();
        assert_eq!(
            (e.status, e.retry_after),
            (Status::TooManyRequests, Some(50))
        );
        assert!(
            limiter.check(&caller(2), 130).is_ok(),
            "another user has their own budget"
        );
        assert!(
            limiter.check(&caller(1), 180).is_ok(),
            "a new minute starts afresh"
        );
    }
}
