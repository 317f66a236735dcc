//! The stages composed on AWS: DynamoDB tables and SQS queues named by each function's
//! settings, and the secrets it uses read from Secrets Manager. Each Lambda's `main`
//! builds what it needs from here, once per instance.
//!
//! Secrets: the template gives a function `{NAME}_ARN` for each secret it may read
//! (`WEBHOOKS_SECRET_KEY_ARN`, `WEBHOOKS_JWT_SECRET_ARN`); [`Aws::read_secrets`] fetches
//! those the binary names ([`SecretArns`]), each once, and hands them to the settings
//! parser as if they were variables. A binary names only the secrets it uses and reads
//! them when it first needs them (the delivery function at init, the API at its first
//! request); the value is never logged. The access check's secret
//! (`WEBHOOKS_ACCESS_CHECK_SECRET_ARN`) is read apart, at the first question
//! ([`Aws::access_check`]), so a fan-out without `"check"` events never reads it.
//!
//! The SDK's HTTP client ([`sdk_config`]) reads the system's root certificates at its
//! first `https://` request, not when the clients are built: the SDK's own default reads
//! them as clients are built (before the function has anything to send), and apart from
//! the delivery client. Here both take them from one read,
//! [`crate::adapters::http::native_roots`]; an `http://` endpoint (moto) reads none.

pub mod dynamodb;
pub mod dynamodb_delivery_log;
pub mod dynamodb_idempotency;
pub mod dynamodb_rate_limit;
mod dynamodb_table;
pub mod sns;
pub mod sqs;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use base64::Engine;

use self::dynamodb::DynamoSubscriptionStore;
use self::dynamodb_delivery_log::DynamoDeliveryLog;
use self::dynamodb_idempotency::DynamoIdempotencyStore;
use self::dynamodb_rate_limit::DynamoRateLimiter;
use self::sns::SnsTopic;
use self::sqs::{Client as SqsClient, SqsQueue};
use crate::adapters::http::ReqwestSender;
use crate::config::{
    ACCESS_CHECK_SECRET_ARN, AccessCheckSettings, ApiSettings, CheckSecretSource,
    DeliveryStageSettings, FanoutSettings, Queue, QueueUrls,
};
use crate::model::clock::SystemClock;
use crate::model::network::NetworkPolicy;
use crate::ports::operator::{LogOnly, OperatorChannel};
use crate::ports::queue::{OutgoingMessage, QueueError, QueueSender};
use crate::ports::secret::{GivenSecret, SecretReadError, SecretSource};
use crate::security::crypto::SecretSealer;
use crate::stages::access::AccessCheck;
use crate::stages::delivery::{Deliverer, DeliverySettings};
use crate::stages::fanout::FanOut;

/// The AWS SDK configuration from the environment (as `aws_config::load_defaults`), with an
/// HTTP client that is built at the first request and trusts the roots of
/// [`crate::adapters::http::native_roots`].
pub async fn sdk_config() -> aws_config::SdkConfig {
    with_late_tls(aws_config::defaults(aws_config::BehaviorVersion::latest()))
        .load()
        .await
}

/// A configuration for an AWS emulator such as moto at `endpoint`: a fixed region and
/// dummy credentials, nothing read from the environment. For tests and local runs.
pub async fn emulator_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "emulator",
        ))
        .load()
        .await
}

/// `loader` with the HTTP client of [`sdk_config`].
pub fn with_late_tls(loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
    loader.http_client(LateHttpClient::default())
}

/// The SDK's hyper clients: a plain one for `http://` endpoints (an emulator such as
/// moto), and a rustls one made when the first `https://` request needs it.
#[derive(Debug, Default)]
struct LateHttpClient {
    plain: OnceLock<SharedHttpClient>,
    tls: Arc<OnceLock<SharedHttpClient>>,
}

fn tls_client() -> SharedHttpClient {
    let mut trust = TrustStore::empty().with_native_roots(false);
    for certificate in &crate::adapters::http::native_roots().certificates {
        trust.add_pem_certificate(pem(certificate));
    }
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a TLS context of certificates builds");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

impl HttpClient for LateHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let plain = self
            .plain
            .get_or_init(|| aws_smithy_http_client::Builder::new().build_http())
            .http_connector(settings, components);
        SharedHttpConnector::new(BySchemeConnector {
            plain,
            tls: self.tls.clone(),
            settings: settings.clone(),
            components: components.clone(),
        })
    }

    // `validate_base_client_config` keeps the trait's default, which does nothing: the
    // SDK's own client makes a connector there, reading the certificates as clients are
    // built.

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some(Cow::Borrowed("1.x"))))
    }
}

/// Sends `http://` requests on the plain client, others on the rustls one (made, and the
/// roots read, on the first of them). Both clients cache their connectors per settings.
#[derive(Debug)]
struct BySchemeConnector {
    plain: SharedHttpConnector,
    tls: Arc<OnceLock<SharedHttpClient>>,
    settings: HttpConnectorSettings,
    components: RuntimeComponents,
}

impl HttpConnector for BySchemeConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if request.uri().starts_with("http://") {
            return self.plain.call(request);
        }
        self.tls
            .get_or_init(tls_client)
            .http_connector(&self.settings, &self.components)
            .call(request)
    }
}

/// A DER certificate as PEM, the form the SDK's trust store takes.
fn pem(certificate: &[u8]) -> Vec<u8> {
    let body = base64::engine::general_purpose::STANDARD.encode(certificate);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out.into_bytes()
}

pub struct Aws {
    pub sdk: aws_config::SdkConfig,
    sqs: SqsClient,
    /// One DynamoDB client for every table the process uses (clones share it).
    dynamodb: aws_sdk_dynamodb::Client,
}

/// A secret named by an `_ARN` variable could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the secret {variable} names from Secrets Manager")]
pub struct SecretError {
    pub variable: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// A secret in Secrets Manager, read when first asked for (one `GetSecretValue`).
struct ManagedSecret {
    client: aws_sdk_secretsmanager::Client,
    variable: &'static str,
    arn: String,
}

#[async_trait]
impl SecretSource for ManagedSecret {
    async fn read(&self) -> Result<String, SecretReadError> {
        let value = self
            .client
            .get_secret_value()
            .secret_id(&self.arn)
            .send()
            .await
            .map_err(|e| SecretReadError {
                name: self.variable.to_owned(),
                source: Box::new(e),
            })?;
        Ok(value.secret_string().unwrap_or_default().trim().to_owned())
    }
}

/// The process environment, with the secrets fetched at start laid over it.
#[derive(Debug, Default, Clone)]
pub struct Environment {
    secrets: HashMap<String, String>,
}

impl Environment {
    /// The value of `name`: a fetched secret, else the process environment.
    pub fn get(&self, name: &str) -> Option<String> {
        self.secrets
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }
}

/// The secrets a binary uses that are kept in Secrets Manager: those of its setting names
/// whose `{NAME}_ARN` variable is set. Naming them reads nothing.
#[derive(Debug, Clone, Default)]
pub struct SecretArns(Vec<(&'static str, String)>);

impl SecretArns {
    pub fn from_env(secrets: &[&'static str]) -> Self {
        Self(
            secrets
                .iter()
                .filter_map(|name| {
                    let arn = std::env::var(format!("{name}_ARN")).ok()?;
                    let arn = arn.trim();
                    (!arn.is_empty()).then(|| (*name, arn.to_owned()))
                })
                .collect(),
        )
    }

    /// The setting names, without their ARNs.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|(name, _)| *name).collect()
    }
}

/// A queue that could not be found at start: every send fails, so callers answer with
/// an error instead of pretending (the API's subscription endpoints keep working).
struct MissingQueue(String);

#[async_trait]
impl QueueSender for MissingQueue {
    async fn send_batch(&self, _: &[OutgoingMessage]) -> Result<Vec<usize>, QueueError> {
        Err(QueueError::Unavailable(self.0.clone()))
    }
}

impl Aws {
    pub fn new(sdk: aws_config::SdkConfig) -> Self {
        let sqs = SqsQueue::client(&sdk);
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        Self { sdk, sqs, dynamodb }
    }

    /// The process environment plus `secrets` (setting names such as
    /// [`crate::config::SECRET_KEY`]): for each one whose `{NAME}_ARN` is set, one
    /// `GetSecretValue`. A secret without an `_ARN` variable is read from the environment
    /// as usual (the local runner's way).
    pub async fn environment(&self, secrets: &[&'static str]) -> Result<Environment, SecretError> {
        self.read_secrets(&SecretArns::from_env(secrets)).await
    }

    /// The process environment plus the secrets of `arns`, all read at the same time (each
    /// read is a round trip).
    pub async fn read_secrets(&self, arns: &SecretArns) -> Result<Environment, SecretError> {
        let mut env = Environment::default();
        if arns.0.is_empty() {
            return Ok(env);
        }
        let client = aws_sdk_secretsmanager::Client::new(&self.sdk);
        let reads = arns.0.iter().map(|(name, arn)| {
            let client = client.clone();
            async move {
                let value = client
                    .get_secret_value()
                    .secret_id(arn)
                    .send()
                    .await
                    .map_err(|e| SecretError {
                        variable: format!("{name}_ARN"),
                        source: Box::new(e),
                    })?;
                let text = value.secret_string().unwrap_or_default().trim().to_owned();
                Ok::<_, SecretError>((name.to_string(), text))
            }
        });
        env.secrets = futures::future::try_join_all(reads)
            .await?
            .into_iter()
            .collect();
        Ok(env)
    }

    pub fn store(&self, table: &str) -> DynamoSubscriptionStore {
        DynamoSubscriptionStore::new(self.dynamodb.clone(), table)
    }

    pub fn idempotency(&self, table: &str) -> DynamoIdempotencyStore {
        DynamoIdempotencyStore::new(self.dynamodb.clone(), table)
    }

    pub fn delivery_log(&self, table: &str) -> DynamoDeliveryLog {
        DynamoDeliveryLog::new(self.dynamodb.clone(), table)
    }

    pub fn rate_limiter(&self, table: &str) -> DynamoRateLimiter {
        DynamoRateLimiter::new(self.dynamodb.clone(), table)
    }

    /// The queue at its URL setting or, without one, by its default name.
    pub async fn queue(&self, urls: &QueueUrls, queue: Queue) -> Result<Arc<SqsQueue>, QueueError> {
        let found = match urls.url(queue) {
            Some(url) => SqsQueue::from_url(self.sqs.clone(), url.to_owned()),
            None => SqsQueue::by_name(self.sqs.clone(), &urls.default_name(queue)).await?,
        };
        Ok(Arc::new(found))
    }

    /// Like [`Aws::queue`], but a queue that cannot be found is logged and every send to
    /// it fails; for the API, whose subscription endpoints need no queue.
    pub async fn queue_or_missing(&self, urls: &QueueUrls, queue: Queue) -> Arc<dyn QueueSender> {
        match self.queue(urls, queue).await {
            Ok(q) => q,
            Err(e) => {
                tracing::error!(queue = ?queue, error = %e, "queue not found; sends to it will fail");
                Arc::new(MissingQueue(format!(
                    "the {queue:?} queue is not configured"
                )))
            }
        }
    }

    pub async fn fanout(&self, settings: &FanoutSettings) -> Result<FanOut, QueueError> {
        Ok(FanOut {
            store: Arc::new(self.store(&settings.subscriptions_table)),
            idempotency: Arc::new(self.idempotency(&settings.idempotency_table)),
            deliveries: self.queue(&settings.queues, Queue::Deliveries).await?,
            events: self.queue(&settings.queues, Queue::Events).await?,
            dead_letters: self
                .queue(&settings.queues, Queue::EventsDeadLetters)
                .await?,
            catalogue: settings.catalogue.clone(),
            clock: Arc::new(SystemClock),
            settings: settings.stage.clone(),
            access: settings
                .access_check
                .as_ref()
                .map(|check| self.access_check(check, &settings.network)),
        })
    }

    /// The access check of `settings`, its secret read at the first question (from
    /// Secrets Manager when given as an ARN), its questions sent under `network`.
    pub fn access_check(
        &self,
        settings: &AccessCheckSettings,
        network: &NetworkPolicy,
    ) -> Arc<AccessCheck> {
        let secret: Arc<dyn SecretSource> = match &settings.secret {
            CheckSecretSource::Given(secret) => Arc::new(GivenSecret::new(secret.expose())),
            CheckSecretSource::Arn(arn) => Arc::new(ManagedSecret {
                client: aws_sdk_secretsmanager::Client::new(&self.sdk),
                variable: ACCESS_CHECK_SECRET_ARN,
                arn: arn.clone(),
            }),
        };
        Arc::new(AccessCheck::new(
            settings.url.as_str().to_owned(),
            secret,
            Arc::new(ReqwestSender::new(network.clone())),
            Arc::new(SystemClock),
        ))
    }

    /// The delivery stage of the delivery function, with its queues.
    pub async fn delivery_stage(
        &self,
        settings: &DeliveryStageSettings,
    ) -> Result<Deliverer, QueueError> {
        let deliveries = self.queue(&settings.queues, Queue::Deliveries).await?;
        let dead_letters = self
            .queue(&settings.queues, Queue::DeliveriesDeadLetters)
            .await?;
        let mut deliverer = self.deliverer(
            DelivererParts {
                subscriptions_table: &settings.subscriptions_table,
                delivery_log_table: &settings.delivery_log_table,
                network: &settings.network,
                sealer: &settings.sealer,
                settings: &settings.delivery,
                operator_topic: settings.operator_topic_arn.as_deref(),
                rate_limit_table: Some(&settings.rate_limit_table),
            },
            deliveries,
            dead_letters,
        );
        deliverer.breaker = crate::policy::breaker::Breaker::new(settings.breaker);
        Ok(deliverer)
    }

    /// The delivery stage as the API's `dispatch` uses it: one attempt, logged, and never a
    /// queued retry; the deliveries queue takes the operational events a removal causes.
    pub fn dispatcher(
        &self,
        settings: &ApiSettings,
        deliveries: Arc<dyn QueueSender>,
    ) -> Deliverer {
        let no_queue = || -> Arc<dyn QueueSender> {
            Arc::new(MissingQueue("dispatch parks nothing".to_owned()))
        };
        self.deliverer(
            DelivererParts {
                subscriptions_table: &settings.subscriptions_table,
                delivery_log_table: &settings.delivery_log_table,
                network: &settings.url_policy.network,
                sealer: &settings.sealer,
                settings: &settings.delivery,
                operator_topic: settings.operator_topic_arn.as_deref(),
                rate_limit_table: None,
            },
            deliveries,
            no_queue(),
        )
    }

    /// The delivery stage, with an HTTP client that honours the installation's network
    /// policy and is reused by every invocation of the instance.
    pub fn deliverer(
        &self,
        parts: DelivererParts<'_>,
        deliveries: Arc<dyn QueueSender>,
        dead_letters: Arc<dyn QueueSender>,
    ) -> Deliverer {
        Deliverer {
            store: Arc::new(self.store(parts.subscriptions_table)),
            log: Arc::new(self.delivery_log(parts.delivery_log_table)),
            deliveries,
            dead_letters,
            sender: Arc::new(ReqwestSender::new(parts.network.clone())),
            sealer: parts.sealer.clone(),
            clock: Arc::new(SystemClock),
            settings: parts.settings.clone(),
            breaker: Default::default(),
            operator: self.operator(parts.operator_topic),
            tokens: Default::default(),
            limiter: match parts.rate_limit_table {
                Some(table) => Arc::new(self.rate_limiter(table)),
                // `dispatch` is not rate limited: nothing takes a slot.
                None => Arc::new(crate::adapters::memory::rate_limit::MemoryRateLimiter::default()),
            },
        }
    }

    /// The operator's channel: the SNS topic when one is configured, else the log.
    pub fn operator(&self, topic_arn: Option<&str>) -> Arc<dyn OperatorChannel> {
        match topic_arn {
            Some(arn) => Arc::new(SnsTopic::from_sdk(&self.sdk, arn)),
            None => Arc::new(LogOnly),
        }
    }
}

/// What a [`Deliverer`] on AWS is made of, besides its queues.
pub struct DelivererParts<'a> {
    pub subscriptions_table: &'a str,
    pub delivery_log_table: &'a str,
    pub network: &'a NetworkPolicy,
    pub sealer: &'a SecretSealer,
    pub settings: &'a DeliverySettings,
    pub operator_topic: Option<&'a str>,
    /// The table of rate-limit counters; `None` for `dispatch`, which is not limited.
    pub rate_limit_table: Option<&'a str>,
}
