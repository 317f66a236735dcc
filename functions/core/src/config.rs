//! Installation settings, read from environment variables, one set per binary: each Lambda
//! function parses only what it uses ([`ApiSettings`], [`FanoutSettings`],
//! [`DeliveryStageSettings`]), and the local runner, which runs all three stages, parses
//! all of them ([`Settings`]). The names are the same everywhere; only the defaults differ
//! (see [`Defaults`]).
//!
//! Parsing is pure: it reads through a lookup function, so secrets fetched at start (on
//! AWS, from Secrets Manager; see `adapters::aws::Aws::environment`) and tests' variables
//! go through the same code as the process environment. A bad value is refused with the
//! name of the variable and what is wrong with it; no value is ever echoed back.

use std::time::Duration;

use crate::model::catalogue::Catalogue;
use crate::model::identity::Deployment;
use crate::model::network::{IpRange, NetworkPolicy};
use crate::model::url::{TriggerUrl, UrlPolicy};
use crate::policy::access::CheckSecret;
use crate::policy::after_attempt::OnRepeatedFailure;
use crate::policy::breaker::BreakerSettings;
use crate::policy::retry::RetryPolicy;
use crate::security::auth::TokenVerifier;
use crate::security::crypto::SecretSealer;
use crate::stages::delivery::DeliverySettings;
use crate::stages::fanout::FanOutSettings;

/// The HS256 secret the local runner uses when `WEBHOOKS_JWT_SECRET` is unset. It is
/// printed at start; never use it for a deployment.
pub const DEV_JWT_SECRET: &str = "webhooks-local-development-secret";
/// The sealing key the local runner uses when `WEBHOOKS_SECRET_KEY` is unset.
pub const DEV_SECRET_KEY: &str = "6465762d6f6e6c792d7365616c696e672d6b65792d6e6f742d666f722d70726f";

/// The secret settings. On AWS each is held in Secrets Manager and the function is given
/// its ARN in `{NAME}_ARN`; locally the variable itself holds the value.
pub const SECRET_KEY: &str = "WEBHOOKS_SECRET_KEY";
pub const JWT_SECRET: &str = "WEBHOOKS_JWT_SECRET";

/// The product's access check (SPEC section 5): its URL, and its secret, given in
/// `WEBHOOKS_ACCESS_CHECK_SECRET` or, on AWS, kept in Secrets Manager at
/// `WEBHOOKS_ACCESS_CHECK_SECRET_ARN` and read at the first question.
pub const ACCESS_CHECK_URL: &str = "WEBHOOKS_ACCESS_CHECK_URL";
pub const ACCESS_CHECK_SECRET: &str = "WEBHOOKS_ACCESS_CHECK_SECRET";
pub const ACCESS_CHECK_SECRET_ARN: &str = "WEBHOOKS_ACCESS_CHECK_SECRET_ARN";

/// The access check an installation names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessCheckSettings {
    /// Its form checked here (the rules of a `trigger_url`); its address at every question.
    pub url: TriggerUrl,
    pub secret: CheckSecretSource,
}

/// Where the access check's secret is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckSecretSource {
    Given(CheckSecret),
    /// A Secrets Manager secret, read at the first question.
    Arn(String),
}

/// The default resource URL template: the Accelo API's shape.
pub const DEFAULT_RESOURCE_URL_TEMPLATE: &str =
    "https://{deployment}.api.accelo.com/api/v0/{trigger_table_plural}/{object_id}";

#[derive(Debug, Clone)]
pub struct Defaults {
    pub allow_http: bool,
    pub allowed_networks: Vec<IpRange>,
    pub jwt_secret: Option<&'static str>,
    pub secret_key: Option<&'static str>,
}

impl Defaults {
    /// On AWS: https only, no private ranges, every secret must be configured.
    pub fn lambda() -> Self {
        Self {
            allow_http: false,
            allowed_networks: Vec::new(),
            jwt_secret: None,
            secret_key: None,
        }
    }

    /// On a laptop: http and loopback receivers allowed, development secrets built in.
    pub fn local() -> Self {
        Self {
            allow_http: true,
            allowed_networks: IpRange::loopback(),
            jwt_secret: Some(DEV_JWT_SECRET),
            secret_key: Some(DEV_SECRET_KEY),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
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

/// Variables as one binary sees them: blank values count as unset.
pub struct Env<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    defaults: &'a Defaults,
}

impl<'a> Env<'a> {
    pub fn new(defaults: &'a Defaults, get: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { get, defaults }
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.get)(name).filter(|v| !v.trim().is_empty())
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.var(name).unwrap_or_else(|| default.to_owned())
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.var(name).as_deref().map(str::trim) {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(err(name, format!("`{other}` is not true or false"))),
        }
    }

    fn number(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.var(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| err(name, "must be a whole number")),
        }
    }

    fn url_policy(&self) -> Result<UrlPolicy, ConfigError> {
        Ok(UrlPolicy {
            allow_http: self.flag("WEBHOOKS_ALLOW_HTTP", self.defaults.allow_http)?,
            network: self.network()?,
        })
    }

    /// The access check, when [`ACCESS_CHECK_URL`] is set; its secret must be set with it,
    /// and not without it.
    fn access_check(&self) -> Result<Option<AccessCheckSettings>, ConfigError> {
        let url = self.var(ACCESS_CHECK_URL).filter(|u| !u.trim().is_empty());
        let arn = self
            .var(ACCESS_CHECK_SECRET_ARN)
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty());
        let given = self
            .var(ACCESS_CHECK_SECRET)
            .filter(|v| !v.trim().is_empty());
        let Some(url) = url else {
            if arn.is_some() || given.is_some() {
                return Err(err(
                    ACCESS_CHECK_SECRET,
                    "is set without WEBHOOKS_ACCESS_CHECK_URL: set both, or neither",
                ));
            }
            return Ok(None);
        };
        let url = TriggerUrl::parse_field(url.trim(), &self.url_policy()?, ACCESS_CHECK_URL)
            .map_err(|e| err(ACCESS_CHECK_URL, e))?;
        let secret = match (arn, given) {
            (Some(arn), _) => CheckSecretSource::Arn(arn),
            (None, Some(given)) => CheckSecretSource::Given(
                CheckSecret::parse(&given).map_err(|rule| err(ACCESS_CHECK_SECRET, rule))?,
            ),
            (None, None) => {
                return Err(err(
                    ACCESS_CHECK_SECRET,
                    "is required with WEBHOOKS_ACCESS_CHECK_URL (on AWS, WEBHOOKS_ACCESS_CHECK_SECRET_ARN)",
                ));
            }
        };
        Ok(Some(AccessCheckSettings { url, secret }))
    }

    /// The delivery schedule (`WEBHOOKS_RETRY_SCHEDULE`), which failed access check
    /// questions follow too.
    fn retry_policy(&self) -> Result<RetryPolicy, ConfigError> {
        Ok(match self.var("WEBHOOKS_RETRY_SCHEDULE") {
            Some(schedule) => RetryPolicy {
                schedule: RetryPolicy::parse_schedule(&schedule)
                    .map_err(|e| err("WEBHOOKS_RETRY_SCHEDULE", e))?,
                ..RetryPolicy::default()
            },
            None => RetryPolicy::default(),
        })
    }

    fn network(&self) -> Result<NetworkPolicy, ConfigError> {
        let allowed = match self.var("WEBHOOKS_ALLOW_NETWORKS") {
            Some(list) => {
                IpRange::parse_list(&list).map_err(|e| err("WEBHOOKS_ALLOW_NETWORKS", e))?
            }
            None => self.defaults.allowed_networks.clone(),
        };
        Ok(NetworkPolicy::allowing(allowed))
    }

    fn catalogue(&self) -> Result<Catalogue, ConfigError> {
        if let Some(json) = self.var("WEBHOOKS_EVENT_TYPES") {
            Catalogue::from_json(&json).map_err(|e| err("WEBHOOKS_EVENT_TYPES", e))
        } else if let Some(path) = self.var("WEBHOOKS_EVENT_TYPES_FILE") {
            let json = std::fs::read_to_string(&path)
                .map_err(|e| err("WEBHOOKS_EVENT_TYPES_FILE", format!("{path}: {e}")))?;
            Catalogue::from_json(&json).map_err(|e| err("WEBHOOKS_EVENT_TYPES_FILE", e))
        } else {
            Ok(Catalogue::default())
        }
    }

    /// The key that seals subscription secrets at rest.
    fn sealer(&self) -> Result<SecretSealer, ConfigError> {
        let key = self
            .var(SECRET_KEY)
            .or(self.defaults.secret_key.map(str::to_owned))
            .ok_or_else(|| {
                err(
                    SECRET_KEY,
                    "is required: 32 bytes as 64 hex characters (on AWS the stack keeps it in \
                     Secrets Manager and passes WEBHOOKS_SECRET_KEY_ARN)",
                )
            })?;
        SecretSealer::from_encoded(&key).map_err(|e| err(SECRET_KEY, e))
    }

    fn operator_topic_arn(&self) -> Option<String> {
        self.var("WEBHOOKS_OPERATOR_TOPIC_ARN")
            .filter(|arn| !arn.trim().is_empty())
    }

    fn delivery(&self) -> Result<DeliverySettings, ConfigError> {
        let delivery = DeliverySettings {
            timeout: Duration::from_secs(self.number("WEBHOOKS_DELIVERY_TIMEOUT_SECS", 10)?.max(1)),
            timeout_limit: self
                .number("WEBHOOKS_TIMEOUT_LIMIT", 5)?
                .clamp(1, u32::MAX as u64) as u32,
            log_retention: Duration::from_secs(
                self.number("WEBHOOKS_DELIVERY_LOG_RETENTION_DAYS", 30)? * 86400,
            ),
            api_base_url: self.var("WEBHOOKS_API_BASE_URL").unwrap_or_default(),
            on_repeated_failure: match self.var("WEBHOOKS_ON_REPEATED_FAILURE") {
                None => OnRepeatedFailure::default(),
                Some(raw) => OnRepeatedFailure::parse(&raw).ok_or_else(|| {
                    err("WEBHOOKS_ON_REPEATED_FAILURE", "must be delete or disable")
                })?,
            },
            retry: self.retry_policy()?,
        };
        Ok(delivery)
    }

    /// `WEBHOOKS_BREAKER_COOLDOWN_SECS`: how long a slow failure holds a subscription's
    /// jobs back at first; 0 turns the breaker off.
    fn breaker(&self) -> Result<BreakerSettings, ConfigError> {
        let default = BreakerSettings::default();
        Ok(
            match self.number("WEBHOOKS_BREAKER_COOLDOWN_SECS", default.cooldown.as_secs())? {
                0 => BreakerSettings::off(),
                secs => BreakerSettings {
                    cooldown: Duration::from_secs(secs),
                    max_cooldown: Duration::from_secs(secs).max(default.max_cooldown),
                    ..default
                },
            },
        )
    }

    fn subscriptions_table(&self) -> String {
        self.text("WEBHOOKS_SUBSCRIPTIONS_TABLE", "webhooks-subscriptions")
    }

    fn delivery_log_table(&self) -> String {
        self.text("WEBHOOKS_DELIVERY_LOG_TABLE", "webhooks-delivery-log")
    }

    fn queues(&self, wanted: &[Queue]) -> QueueUrls {
        let mut urls = QueueUrls {
            prefix: self.text("WEBHOOKS_QUEUE_PREFIX", "webhooks"),
            ..QueueUrls::default()
        };
        for queue in wanted {
            urls.urls[*queue as usize] = self.var(queue.url_variable());
        }
        urls
    }
}

/// Settings read from variables: the process environment, or any lookup (the secrets
/// fetched at start laid over it, a test's map).
pub trait FromEnv: Sized {
    fn parse(env: &Env) -> Result<Self, ConfigError>;

    fn from_env(defaults: &Defaults) -> Result<Self, ConfigError> {
        Self::from_lookup(defaults, |k| std::env::var(k).ok())
    }

    fn from_lookup(
        defaults: &Defaults,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::parse(&Env::new(defaults, &get))
    }
}

/// The queues, as the functions see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Events = 0,
    EventsDeadLetters = 1,
    Deliveries = 2,
    DeliveriesDeadLetters = 3,
}

impl Queue {
    pub fn url_variable(self) -> &'static str {
        match self {
            Self::Events => "WEBHOOKS_EVENTS_QUEUE_URL",
            Self::EventsDeadLetters => "WEBHOOKS_EVENTS_DLQ_URL",
            Self::Deliveries => "WEBHOOKS_DELIVERIES_QUEUE_URL",
            Self::DeliveriesDeadLetters => "WEBHOOKS_DELIVERIES_DLQ_URL",
        }
    }

    /// The queue's name suffix: the local runner names its queues `{prefix}-{suffix}`.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::EventsDeadLetters => "events-dlq",
            Self::Deliveries => "deliveries",
            Self::DeliveriesDeadLetters => "deliveries-dlq",
        }
    }
}

/// Where a binary finds its queues: the URLs the SAM template passes (only those of the
/// queues it uses), or, without one, the name the local runner gives the queue
/// (`{WEBHOOKS_QUEUE_PREFIX}-events`, ...), so the binaries also run against queues the
/// runner created in an emulator.
#[derive(Debug, Clone, Default)]
pub struct QueueUrls {
    urls: [Option<String>; 4],
    pub prefix: String,
}

impl QueueUrls {
    pub fn url(&self, queue: Queue) -> Option<&str> {
        self.urls[queue as usize].as_deref()
    }

    pub fn default_name(&self, queue: Queue) -> String {
        format!("{}-{}", self.prefix, queue.suffix())
    }
}

/// What the API function reads.
#[derive(Debug, Clone)]
pub struct ApiSettings {
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
    pub delivery_log_table: String,
    /// The events queue (publish, trigger) and the deliveries queue (resend, recover).
    pub queues: QueueUrls,
    /// The `resource_url` of events that `trigger` and `dispatch` make from a bare object id.
    /// Placeholders: `{deployment}`, `{trigger_table}`, `{trigger_table_plural}`, `{event_id}`,
    /// `{object_id}`.
    pub resource_url_template: String,
    /// `dispatch` delivers synchronously: request limit, timeouts-in-a-row limit, log retention.
    pub delivery: DeliverySettings,
    /// The SNS topic the operator hears of removals on (a `dispatch` can remove), if any.
    pub operator_topic_arn: Option<String>,
    /// The product's access check, if any: `trigger` and `dispatch` ask it, and
    /// `"visible_to": "check"` is refused without it.
    pub access_check: Option<AccessCheckSettings>,
}

impl FromEnv for ApiSettings {
    fn parse(env: &Env) -> Result<Self, ConfigError> {
        let jwt_secret = env
            .var(JWT_SECRET)
            .or(env.defaults.jwt_secret.map(str::to_owned));
        let public_keys = env.var("WEBHOOKS_JWT_PUBLIC_KEYS");
        let behind_authorizer = env.flag("WEBHOOKS_JWT_AUTHORIZER", false)?;
        if jwt_secret.is_none() && public_keys.is_none() && !behind_authorizer {
            return Err(err(
                JWT_SECRET,
                "no bearer token could be verified: set WEBHOOKS_JWT_SECRET (HS256; on AWS \
                 WEBHOOKS_JWT_SECRET_ARN), WEBHOOKS_JWT_PUBLIC_KEYS (RS256), or serve the API \
                 behind an API Gateway JWT authorizer and set WEBHOOKS_JWT_AUTHORIZER=true",
            ));
        }
        let mut verifier = TokenVerifier::new(jwt_secret.as_deref().map(str::as_bytes));
        if let Some(pems) = public_keys {
            verifier = verifier
                .with_rs256_pems(&pems)
                .map_err(|e| err("WEBHOOKS_JWT_PUBLIC_KEYS", e))?;
        }
        if let Some(list) = env.var("WEBHOOKS_DEPLOYMENTS") {
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
            .expect_issuer(env.var("WEBHOOKS_JWT_ISSUER"))
            .expect_audience(env.var("WEBHOOKS_JWT_AUDIENCE"));

        Ok(Self {
            pro_gate: env.flag("WEBHOOKS_PRO_GATE", false)?,
            url_policy: env.url_policy()?,
            catalogue: env.catalogue()?,
            verifier,
            sealer: env.sealer()?,
            jwt_secret,
            rate_limit_per_minute: env
                .number("WEBHOOKS_RATE_LIMIT_PER_MINUTE", 600)?
                .min(u32::MAX as u64) as u32,
            subscriptions_table: env.subscriptions_table(),
            delivery_log_table: env.delivery_log_table(),
            queues: env.queues(&[Queue::Events, Queue::Deliveries]),
            resource_url_template: env.text(
                "WEBHOOKS_RESOURCE_URL_TEMPLATE",
                DEFAULT_RESOURCE_URL_TEMPLATE,
            ),
            delivery: env.delivery()?,
            operator_topic_arn: env.operator_topic_arn(),
            access_check: env.access_check()?,
        })
    }
}

impl ApiSettings {
    /// Checks every variable the API reads while the secrets named in `unread` are known
    /// to be set but not read yet (the API function reads them at its first request), so a
    /// bad or missing setting still stops the cold start. The secrets' own values are
    /// checked when they are read, by [`FromEnv::from_lookup`].
    pub fn check_before_secrets(
        defaults: &Defaults,
        get: impl Fn(&str) -> Option<String>,
        unread: &[&str],
    ) -> Result<(), ConfigError> {
        // Stand-ins of the right shape, in this function only: the parse's result is
        // dropped, nothing is ever sealed or verified with them.
        let stand_in = |name: &str| match name {
            SECRET_KEY => Some(DEV_SECRET_KEY.to_owned()),
            JWT_SECRET => Some(DEV_JWT_SECRET.to_owned()),
            _ => None,
        };
        Self::from_lookup(defaults, |name| {
            if unread.contains(&name) {
                stand_in(name)
            } else {
                get(name)
            }
        })
        .map(drop)
    }
}

/// What the fan-out function reads: of the secrets, only the access check's, when one is
/// configured.
#[derive(Debug, Clone)]
pub struct FanoutSettings {
    pub catalogue: Catalogue,
    /// The product's access check, if any, and the address ranges it may be in (beyond
    /// the public internet).
    pub access_check: Option<AccessCheckSettings>,
    pub network: NetworkPolicy,
    pub subscriptions_table: String,
    pub idempotency_table: String,
    /// The deliveries queue (jobs), the events queue (continuations) and its dead-letter
    /// queue (unreadable events).
    pub queues: QueueUrls,
    pub stage: FanOutSettings,
}

impl FromEnv for FanoutSettings {
    fn parse(env: &Env) -> Result<Self, ConfigError> {
        let default = FanOutSettings::default();
        let stage = FanOutSettings {
            page_size: env
                .number("WEBHOOKS_FANOUT_PAGE_SIZE", default.page_size as u64)?
                .clamp(1, default.page_size as u64) as usize,
            max_pages_per_message: env.number(
                "WEBHOOKS_FANOUT_PAGES_PER_MESSAGE",
                default.max_pages_per_message as u64,
            )? as usize,
            check_retry: env.retry_policy()?,
            ..default
        };
        Ok(Self {
            catalogue: env.catalogue()?,
            access_check: env.access_check()?,
            network: env.network()?,
            subscriptions_table: env.subscriptions_table(),
            idempotency_table: env.text("WEBHOOKS_IDEMPOTENCY_TABLE", "webhooks-idempotency"),
            queues: env.queues(&[Queue::Events, Queue::EventsDeadLetters, Queue::Deliveries]),
            stage,
        })
    }
}

/// What the delivery function reads: of the secrets, only the sealing key.
#[derive(Debug, Clone)]
pub struct DeliveryStageSettings {
    /// The address ranges receivers may be in (beyond the public internet).
    pub network: NetworkPolicy,
    pub sealer: SecretSealer,
    pub subscriptions_table: String,
    pub delivery_log_table: String,
    /// The rate-limit counters of subscriptions with a `rate_limit`.
    pub rate_limit_table: String,
    /// The deliveries queue (retries) and its dead-letter queue (unreadable jobs).
    pub queues: QueueUrls,
    pub delivery: DeliverySettings,
    /// The share limits per subscription (see `crate::policy::breaker`).
    pub breaker: BreakerSettings,
    /// The SNS topic the operator hears of removals and give-ups on, if any.
    pub operator_topic_arn: Option<String>,
}

impl FromEnv for DeliveryStageSettings {
    fn parse(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            network: env.network()?,
            sealer: env.sealer()?,
            subscriptions_table: env.subscriptions_table(),
            delivery_log_table: env.delivery_log_table(),
            rate_limit_table: env.text("WEBHOOKS_RATE_LIMIT_TABLE", "webhooks-rate-limit"),
            queues: env.queues(&[Queue::Deliveries, Queue::DeliveriesDeadLetters]),
            delivery: env.delivery()?,
            breaker: env.breaker()?,
            operator_topic_arn: env.operator_topic_arn(),
        })
    }
}

/// Everything, for the local runner, which runs the three stages in one process.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api: ApiSettings,
    pub fanout: FanoutSettings,
    pub delivery: DeliveryStageSettings,
}

impl FromEnv for Settings {
    fn parse(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            api: ApiSettings::parse(env)?,
            fanout: FanoutSettings::parse(env)?,
            delivery: DeliveryStageSettings::parse(env)?,
        })
    }
}

impl Settings {
    /// The name prefix of the queues the local runner creates on the `aws` backend.
    pub fn queue_prefix(&self) -> &str {
        &self.api.queues.prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_api_on_lambda_needs_a_sealing_key_and_a_way_to_verify_tokens() {
        let e = ApiSettings::from_lookup(&Defaults::lambda(), lookup(&[])).unwrap_err();
        assert_eq!(e.name, JWT_SECRET);
        assert!(
            e.problem.contains("WEBHOOKS_JWT_PUBLIC_KEYS")
                && e.problem.contains("WEBHOOKS_JWT_AUTHORIZER"),
            "the sentence says what to set: {e}"
        );
        let e = ApiSettings::from_lookup(
            &Defaults::lambda(),
            lookup(&[(JWT_SECRET, "a-secret-of-enough-length-for-hs256")]),
        )
        .unwrap_err();
        assert_eq!(
            e.name, SECRET_KEY,
            "no sealing key is derived from anything"
        );

        for way in [
            (JWT_SECRET, "a-secret-of-enough-length-for-hs256"),
            ("WEBHOOKS_JWT_AUTHORIZER", "true"),
        ] {
            let s = ApiSettings::from_lookup(
                &Defaults::lambda(),
                lookup(&[way, (SECRET_KEY, DEV_SECRET_KEY)]),
            )
            .unwrap();
            assert!(!s.pro_gate && !s.url_policy.allow_http);
            assert!(s.url_policy.network.allowed.is_empty());
        }
    }

    #[test]
    fn the_apis_settings_are_checked_before_its_secrets_are_read() {
        let unread = [SECRET_KEY, JWT_SECRET];
        // Both secrets named but unread: the rest is fine, so the check passes.
        ApiSettings::check_before_secrets(&Defaults::lambda(), lookup(&[]), &unread).unwrap();
        // Any other bad variable is found without the secrets.
        let e = ApiSettings::check_before_secrets(
            &Defaults::lambda(),
            lookup(&[("WEBHOOKS_RETRY_SCHEDULE", "soon")]),
            &unread,
        )
        .unwrap_err();
        assert_eq!(e.name, "WEBHOOKS_RETRY_SCHEDULE");
        // A secret that is not named at all is still missing.
        let e = ApiSettings::check_before_secrets(&Defaults::lambda(), lookup(&[]), &[JWT_SECRET])
            .unwrap_err();
        assert_eq!(e.name, SECRET_KEY);
        let e = ApiSettings::check_before_secrets(&Defaults::lambda(), lookup(&[]), &[SECRET_KEY])
            .unwrap_err();
        assert_eq!(e.name, JWT_SECRET, "no way to verify a token");
        // The value of a secret is checked when it is read, not before.
        let e = ApiSettings::from_lookup(
            &Defaults::lambda(),
            lookup(&[(SECRET_KEY, "short"), ("WEBHOOKS_JWT_AUTHORIZER", "true")]),
        )
        .unwrap_err();
        assert_eq!(e.name, SECRET_KEY);
    }

    #[test]
    fn the_fanout_reads_no_secret_and_only_its_queues() {
        let asked = RefCell::new(Vec::new());
        let s = FanoutSettings::from_lookup(&Defaults::lambda(), |k: &str| {
            asked.borrow_mut().push(k.to_owned());
            (k == "WEBHOOKS_DELIVERIES_QUEUE_URL").then(|| "https://sqs/deliveries".to_owned())
        })
        .unwrap();
        let asked = asked.into_inner();
        for secret in [SECRET_KEY, JWT_SECRET, "WEBHOOKS_JWT_PUBLIC_KEYS"] {
            assert!(!asked.iter().any(|k| k == secret), "asked for {secret}");
        }
        assert!(!asked.iter().any(|k| k == "WEBHOOKS_DELIVERIES_DLQ_URL"));
        assert_eq!(
            s.queues.url(Queue::Deliveries),
            Some("https://sqs/deliveries")
        );
        assert_eq!(
            s.queues.default_name(Queue::Events),
            "webhooks-events",
            "unset URLs fall back to the local runner's names"
        );
    }

    #[test]
    fn the_delivery_stage_reads_the_sealing_key_and_nothing_of_tokens() {
        let asked = RefCell::new(Vec::new());
        let e = DeliveryStageSettings::from_lookup(&Defaults::lambda(), |k: &str| {
            asked.borrow_mut().push(k.to_owned());
            None
        })
        .unwrap_err();
        assert_eq!(e.name, SECRET_KEY);
        let s = DeliveryStageSettings::from_lookup(
            &Defaults::lambda(),
            lookup(&[
                (SECRET_KEY, DEV_SECRET_KEY),
                ("WEBHOOKS_TIMEOUT_LIMIT", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(s.delivery.timeout_limit, 3);
        assert!(s.breaker.enabled);
        assert!(!asked.into_inner().iter().any(|k| k.contains("JWT")));
        let off = DeliveryStageSettings::from_lookup(
            &Defaults::lambda(),
            lookup(&[
                (SECRET_KEY, DEV_SECRET_KEY),
                ("WEBHOOKS_BREAKER_COOLDOWN_SECS", "0"),
            ]),
        )
        .unwrap();
        assert!(!off.breaker.enabled);
        let slow = DeliveryStageSettings::from_lookup(
            &Defaults::lambda(),
            lookup(&[
                (SECRET_KEY, DEV_SECRET_KEY),
                ("WEBHOOKS_BREAKER_COOLDOWN_SECS", "90"),
            ]),
        )
        .unwrap();
        assert_eq!(slow.breaker.cooldown, Duration::from_secs(90));
    }

    #[test]
    fn local_defaults_allow_loopback_http() {
        let s = Settings::from_lookup(&Defaults::local(), lookup(&[])).unwrap();
        assert!(s.api.url_policy.allow_http);
        assert_eq!(s.api.url_policy.network.allowed.len(), 2);
        assert_eq!(s.delivery.network.allowed.len(), 2);
        assert_eq!(s.api.jwt_secret.as_deref(), Some(DEV_JWT_SECRET));
        assert_eq!(s.queue_prefix(), "webhooks");
    }

    #[test]
    fn overrides_are_read_and_bad_values_named() {
        let s = Settings::from_lookup(&Defaults::local(), lookup(&[("WEBHOOKS_PRO_GATE", "true"), ("WEBHOOKS_EVENT_TYPES", r#"[{"event_id":"x","event_title":"X","trigger_table":"t","trigger_type":"create"}]"#), ("WEBHOOKS_FANOUT_PAGE_SIZE", "2")])).unwrap();
        assert!(s.api.pro_gate);
        // The installation's one event, and the platform's two.
        assert_eq!(s.api.catalogue.types().len(), 3);
        assert_eq!(s.fanout.catalogue.types().len(), 3);
        assert_eq!(s.fanout.stage.page_size, 2);
        for (name, bad) in [
            ("WEBHOOKS_PRO_GATE", "maybe"),
            ("WEBHOOKS_ALLOW_NETWORKS", "bad"),
            ("WEBHOOKS_FANOUT_PAGE_SIZE", "lots"),
            ("WEBHOOKS_ON_REPEATED_FAILURE", "shrug"),
            ("WEBHOOKS_JWT_AUTHORIZER", "perhaps"),
        ] {
            let e = Settings::from_lookup(&Defaults::local(), lookup(&[(name, bad)])).unwrap_err();
            assert_eq!(e.name, name);
            assert!(!e.problem.is_empty());
        }
        let e = Settings::from_lookup(
            &Defaults::local(),
            lookup(&[("WEBHOOKS_ALLOW_NETWORKS", "10.1.0.0/16,10.2.0.0/99")]),
        )
        .unwrap_err();
        assert!(e.problem.starts_with("`10.2.0.0/99` is not"), "{e}");
    }

    #[test]
    fn the_access_check_needs_its_url_and_its_secret_together() {
        let secret = format!(
            "whsec_{}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 24])
        );
        let parse =
            |vars: &[(&str, &str)]| FanoutSettings::from_lookup(&Defaults::lambda(), lookup(vars));
        assert_eq!(parse(&[]).unwrap().access_check, None);
        let given = parse(&[
            (ACCESS_CHECK_URL, "https://product.example/access"),
            (ACCESS_CHECK_SECRET, &secret),
        ])
        .unwrap()
        .access_check
        .unwrap();
        assert_eq!(given.url.as_str(), "https://product.example/access");
        assert!(matches!(given.secret, CheckSecretSource::Given(_)));
        let arn = "arn:aws:secretsmanager:eu-west-1:1:secret:check";
        let managed = parse(&[
            (ACCESS_CHECK_URL, "https://product.example/access"),
            (ACCESS_CHECK_SECRET_ARN, arn),
        ])
        .unwrap()
        .access_check
        .unwrap();
        assert_eq!(managed.secret, CheckSecretSource::Arn(arn.into()));
        for (vars, named) in [
            (
                vec![(ACCESS_CHECK_URL, "https://product.example/access")],
                ACCESS_CHECK_SECRET,
            ),
            (
                vec![(ACCESS_CHECK_SECRET, secret.as_str())],
                ACCESS_CHECK_SECRET,
            ),
            (
                vec![
                    (ACCESS_CHECK_URL, "https://product.example/a"),
                    (ACCESS_CHECK_SECRET, "whsec_c2hvcnQ="),
                ],
                ACCESS_CHECK_SECRET,
            ),
            // The rules of a trigger_url: https only on AWS.
            (
                vec![
                    (ACCESS_CHECK_URL, "http://product.example/a"),
                    (ACCESS_CHECK_SECRET, secret.as_str()),
                ],
                ACCESS_CHECK_URL,
            ),
        ] {
            let e = parse(&vars).unwrap_err().to_string();
            assert!(e.contains(named), "{vars:?}: {e}");
            assert!(!e.contains(&secret[6..]), "no secret in errors: {e}");
        }
    }
}
