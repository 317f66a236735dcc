//! Installation settings, read from environment variables. The Lambda functions and the
//! local runner read the same names; only the defaults differ (see [`Defaults`]).

use crate::auth::TokenVerifier;
use crate::catalogue::Catalogue;
use crate::crypto::SecretSealer;
use crate::delivery::DeliverySettings;
use crate::identity::Deployment;
use crate::network::{IpRange, NetworkPolicy};
use crate::retry::RetryPolicy;
use crate::subscription::UrlPolicy;

/// The HS256 secret the local runner uses when `WEBHOOKS_JWT_SECRET` is unset. It is
/// printed at start; never use it for a deployment.
pub const DEV_JWT_SECRET: &str = "webhooks-local-development-secret";
/// The sealing key the local runner uses when `WEBHOOKS_SECRET_KEY` is unset.
pub const DEV_SECRET_KEY: &str = "6465762d6f6e6c792d7365616c696e672d6b65792d6e6f742d666f722d70726f";

#[derive(Debug, Clone)]
pub struct Defaults {
    pub allow_http: bool,
    pub allowed_networks: Vec<IpRange>,
    pub jwt_secret: Option<&'static str>,
    pub secret_key: Option<&'static str>,
    pub subscriptions_table: &'static str,
}

impl Defaults {
    /// On AWS: https only, no private ranges, every secret must be configured.
    pub fn lambda() -> Self {
        Self {
            allow_http: false,
            allowed_networks: Vec::new(),
            jwt_secret: None,
            secret_key: None,
            subscriptions_table: "webhooks-subscriptions",
        }
    }

    /// On a laptop: http and loopback receivers allowed, development secrets built in.
    pub fn local() -> Self {
        Self {
            allow_http: true,
            allowed_networks: IpRange::loopback(),
            jwt_secret: Some(DEV_JWT_SECRET),
            secret_key: Some(DEV_SECRET_KEY),
            subscriptions_table: "webhooks-subscriptions",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Only pro users may manage webhooks (Accelo's original rule); off by default.
    pub pro_gate: bool,
    pub url_policy: UrlPolicy,
    pub catalogue: Catalogue,
    pub verifier: TokenVerifier,
    pub sealer: SecretSealer,
    /// The HS256 secret, when one is configured (the local runner mints its token with it).
    pub jwt_secret: Option<String>,
    /// API requests a user may make per minute; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    pub subscriptions_table: String,
    /// The table of idempotency keys (fan-out).
    pub idempotency_table: String,
    /// The delivery log table.
    pub delivery_log_table: String,
    /// Queue URLs, as the SAM template passes them to the functions. The local runner
    /// creates its queues by name instead (see `queue_prefix`).
    pub events_queue_url: Option<String>,
    pub events_dlq_url: Option<String>,
    pub deliveries_queue_url: Option<String>,
    pub deliveries_dlq_url: Option<String>,
    /// Names of the queues the local runner creates: `{prefix}-events`, `{prefix}-events-dlq`,
    /// `{prefix}-deliveries`, `{prefix}-deliveries-dlq`.
    pub queue_prefix: String,
    /// The `resource_url` of events that `trigger` and `dispatch` make from a bare object id.
    /// Placeholders: `{deployment}`, `{trigger_table}`, `{event_id}`, `{object_id}`.
    pub resource_url_template: String,
    /// Request limit, timeouts-in-a-row limit, retry schedule and log retention.
    pub delivery: DeliverySettings,
}

/// The default resource URL template: the Accelo API's shape.
pub const DEFAULT_RESOURCE_URL_TEMPLATE: &str =
    "https://{deployment}.api.accelo.com/api/v0/{trigger_table}s/{object_id}";

#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

fn err(name: &'static str, problem: impl ToString) -> ConfigError {
    ConfigError {
        name,
        problem: problem.to_string(),
    }
}

fn flag(name: &'static str, value: Option<String>, default: bool) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(err(name, format!("`{other}` is not true or false"))),
    }
}

impl Settings {
    pub fn from_env(defaults: &Defaults) -> Result<Self, ConfigError> {
        Self::from_lookup(defaults, |k| std::env::var(k).ok())
    }

    pub fn from_lookup(
        defaults: &Defaults,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());

        let mut allowed = defaults.allowed_networks.clone();
        if let Some(list) = get("WEBHOOKS_ALLOW_NETWORKS") {
            allowed = IpRange::parse_list(&list).map_err(|e| err("WEBHOOKS_ALLOW_NETWORKS", e))?;
        }
        let url_policy = UrlPolicy {
            allow_http: flag(
                "WEBHOOKS_ALLOW_HTTP",
                get("WEBHOOKS_ALLOW_HTTP"),
                defaults.allow_http,
            )?,
            network: NetworkPolicy::allowing(allowed),
        };

        let catalogue = if let Some(json) = get("WEBHOOKS_EVENT_TYPES") {
            Catalogue::from_json(&json).map_err(|e| err("WEBHOOKS_EVENT_TYPES", e))?
        } else if let Some(path) = get("WEBHOOKS_EVENT_TYPES_FILE") {
            let json = std::fs::read_to_string(&path)
                .map_err(|e| err("WEBHOOKS_EVENT_TYPES_FILE", format!("{path}: {e}")))?;
            Catalogue::from_json(&json).map_err(|e| err("WEBHOOKS_EVENT_TYPES_FILE", e))?
        } else {
            Catalogue::default()
        };

        let jwt_secret = get("WEBHOOKS_JWT_SECRET").or(defaults.jwt_secret.map(str::to_owned));
        let mut verifier = TokenVerifier::new(jwt_secret.as_deref().map(str::as_bytes));
        if let Some(pems) = get("WEBHOOKS_JWT_PUBLIC_KEYS") {
            verifier = verifier
                .with_rs256_pems(&pems)
                .map_err(|e| err("WEBHOOKS_JWT_PUBLIC_KEYS", e))?;
        }
        if let Some(list) = get("WEBHOOKS_DEPLOYMENTS") {
            let deployments = list
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(Deployment::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err("WEBHOOKS_DEPLOYMENTS", e))?;
            verifier = verifier.restrict_deployments(deployments);
        }
        verifier = verifier
            .expect_issuer(get("WEBHOOKS_JWT_ISSUER"))
            .expect_audience(get("WEBHOOKS_JWT_AUDIENCE"));

        // The sealing key: WEBHOOKS_SECRET_KEY; else one derived from the HS256 secret (also
        // kept outside the tables, but rotating it would orphan sealed secrets, so the
        // template sets WEBHOOKS_SECRET_KEY); else the local runner's development key.
        let sealer = match (
            get("WEBHOOKS_SECRET_KEY"),
            get("WEBHOOKS_JWT_SECRET"),
            defaults.secret_key,
        ) {
            (Some(key), _, _) => {
                SecretSealer::from_encoded(&key).map_err(|e| err("WEBHOOKS_SECRET_KEY", e))?
            }
            (None, Some(jwt), _) => SecretSealer::derived_from(jwt.as_bytes()),
            (None, None, Some(dev)) => {
                SecretSealer::from_encoded(dev).map_err(|e| err("WEBHOOKS_SECRET_KEY", e))?
            }
            (None, None, None) => {
                return Err(err(
                    "WEBHOOKS_SECRET_KEY",
                    "is required (32 bytes as 64 hex characters) when WEBHOOKS_JWT_SECRET is not set",
                ));
            }
        };

        let rate_limit_per_minute = match get("WEBHOOKS_RATE_LIMIT_PER_MINUTE") {
            None => 600,
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| err("WEBHOOKS_RATE_LIMIT_PER_MINUTE", "must be a whole number"))?,
        };

        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| err(name, "must be a whole number")),
            }
        };
        let mut delivery = DeliverySettings {
            timeout: std::time::Duration::from_secs(
                number("WEBHOOKS_DELIVERY_TIMEOUT_SECS", 10)?.max(1),
            ),
            timeout_limit: number("WEBHOOKS_TIMEOUT_LIMIT", 5)?.clamp(1, u32::MAX as u64) as u32,
            log_retention: std::time::Duration::from_secs(
                number("WEBHOOKS_DELIVERY_LOG_RETENTION_DAYS", 30)? * 86400,
            ),
            ..DeliverySettings::default()
        };
        if let Some(schedule) = get("WEBHOOKS_RETRY_SCHEDULE") {
            delivery.retry = RetryPolicy {
                schedule: RetryPolicy::parse_schedule(&schedule)
                    .map_err(|e| err("WEBHOOKS_RETRY_SCHEDULE", e))?,
                ..RetryPolicy::default()
            };
        }

        Ok(Self {
            delivery,
            pro_gate: flag("WEBHOOKS_PRO_GATE", get("WEBHOOKS_PRO_GATE"), false)?,
            url_policy,
            catalogue,
            verifier,
            sealer,
            jwt_secret,
            rate_limit_per_minute,
            subscriptions_table: get("WEBHOOKS_SUBSCRIPTIONS_TABLE")
                .unwrap_or_else(|| defaults.subscriptions_table.to_owned()),
            idempotency_table: get("WEBHOOKS_IDEMPOTENCY_TABLE")
                .unwrap_or_else(|| "webhooks-idempotency".to_owned()),
            delivery_log_table: get("WEBHOOKS_DELIVERY_LOG_TABLE")
                .unwrap_or_else(|| "webhooks-delivery-log".to_owned()),
            events_queue_url: get("WEBHOOKS_EVENTS_QUEUE_URL"),
            events_dlq_url: get("WEBHOOKS_EVENTS_DLQ_URL"),
            deliveries_queue_url: get("WEBHOOKS_DELIVERIES_QUEUE_URL"),
            deliveries_dlq_url: get("WEBHOOKS_DELIVERIES_DLQ_URL"),
            queue_prefix: get("WEBHOOKS_QUEUE_PREFIX").unwrap_or_else(|| "webhooks".to_owned()),
            resource_url_template: get("WEBHOOKS_RESOURCE_URL_TEMPLATE")
                .unwrap_or_else(|| DEFAULT_RESOURCE_URL_TEMPLATE.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(defaults: &Defaults, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(defaults, |k| map.get(k).cloned())
    }

    #[test]
    fn lambda_defaults_are_strict_and_need_a_sealing_key() {
        let e = settings(&Defaults::lambda(), &[]).unwrap_err();
        assert_eq!(e.name, "WEBHOOKS_SECRET_KEY");
        // Without its own key, the sealing key derives from the HS256 secret.
        let a = settings(
            &Defaults::lambda(),
            &[("WEBHOOKS_JWT_SECRET", "one-secret")],
        )
        .unwrap();
        let b = settings(
            &Defaults::lambda(),
            &[("WEBHOOKS_JWT_SECRET", "one-secret")],
        )
        .unwrap();
        let other = settings(&Defaults::lambda(), &[("WEBHOOKS_JWT_SECRET", "another")]).unwrap();
        let sealed = a.sealer.seal("x");
        assert_eq!(b.sealer.open(&sealed).unwrap(), "x");
        assert!(other.sealer.open(&sealed).is_err());
        let s = settings(
            &Defaults::lambda(),
            &[("WEBHOOKS_SECRET_KEY", DEV_SECRET_KEY)],
        )
        .unwrap();
        assert!(!s.pro_gate && !s.url_policy.allow_http);
        assert!(s.url_policy.network.allowed.is_empty());
        assert!(s.jwt_secret.is_none());
    }

    #[test]
    fn local_defaults_allow_loopback_http() {
        let s = settings(&Defaults::local(), &[]).unwrap();
        assert!(s.url_policy.allow_http);
        assert_eq!(s.url_policy.network.allowed.len(), 2);
        assert_eq!(s.jwt_secret.as_deref(), Some(DEV_JWT_SECRET));
    }

    #[test]
    fn overrides_are_read_and_bad_values_named() {
        let s = settings(&Defaults::local(), &[("WEBHOOKS_PRO_GATE", "true"), ("WEBHOOKS_EVENT_TYPES", r#"[{"event_id":"x","event_title":"X","trigger_table":"t","trigger_type":"create"}]"#)]).unwrap();
        assert!(s.pro_gate);
        assert_eq!(s.catalogue.types().len(), 1);
        assert_eq!(
            settings(&Defaults::local(), &[("WEBHOOKS_PRO_GATE", "maybe")])
                .unwrap_err()
                .name,
            "WEBHOOKS_PRO_GATE"
        );
        assert_eq!(
            settings(&Defaults::local(), &[("WEBHOOKS_ALLOW_NETWORKS", "bad")])
                .unwrap_err()
                .name,
            "WEBHOOKS_ALLOW_NETWORKS"
        );
    }
}
