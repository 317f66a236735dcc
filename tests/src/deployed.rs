//! The stack as deployed, on moto: the platform's tables and queues, its secrets in
//! Secrets Manager, and each function binary started as Lambda starts it, with exactly
//! the environment `template.yaml` gives that function and every AWS call passing
//! through an [`IamGate`] holding that function's own role.

use std::collections::HashMap;

use webhooks_core::adapters::aws::sqs::SqsQueue;
use webhooks_core::config::{DEV_JWT_SECRET, Queue};

use crate::iam_gate::IamGate;
use crate::lambda_runtime::{MotoPlatform, Runtime};
use crate::stack::{Physical, Stack};

/// The sealing key the deployed functions read from Secrets Manager (and the platform
/// that sets things up uses too, so both open the same sealed secrets).
pub const SEALING_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// The test-only settings that let a function reach servers on 127.0.0.1 over http
/// (receivers, token servers, an access check): the Lambda defaults call only public
/// https addresses.
pub const LOOPBACK: &[(&str, &str)] = &[
    ("WEBHOOKS_ALLOW_HTTP", "true"),
    ("WEBHOOKS_ALLOW_NETWORKS", "127.0.0.0/8"),
];

/// A function of the template and the binary that implements it.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    pub logical_id: &'static str,
    pub binary: &'static str,
}

pub struct Deployed {
    pub moto: MotoPlatform,
    pub stack: Stack,
}

/// A function binary running under the runtime emulator, behind its gate.
pub struct Running {
    pub runtime: Runtime,
    pub gate: IamGate,
}

impl Deployed {
    /// A fresh stack; `parameters` override the template's defaults (`JwtSecret` is
    /// the tests' HS256 secret unless given). The secrets the parameters put in Secrets
    /// Manager (`JwtSecret`, `AccessCheckSecret`) are made there in moto.
    pub async fn start(parameters: &[(&str, &str)], platform: &[(&str, &str)]) -> Deployed {
        let mut vars = vec![("WEBHOOKS_SECRET_KEY", SEALING_KEY)];
        vars.extend_from_slice(platform);
        let moto = MotoPlatform::start(&vars).await;
        let secret = async |name: String, value: &str| {
            Physical::secret(&crate::moto::create_secret(&name, value).await)
        };
        let mut params: Vec<(&str, &str)> = vec![("JwtSecret", DEV_JWT_SECRET)];
        params.extend_from_slice(parameters);
        let param = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        let jwt = param("JwtSecret");
        let access_check = param("AccessCheckSecret");

        let var = |name: &str| {
            moto.env()
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("the platform has no {name}"))
        };
        let sqs = SqsQueue::client(&crate::moto::sdk_config().await);
        let prefix = var("WEBHOOKS_QUEUE_PREFIX");
        let mut resources = HashMap::from([
            (
                "SubscriptionsTable".to_owned(),
                Physical::table(&var("WEBHOOKS_SUBSCRIPTIONS_TABLE")),
            ),
            (
                "IdempotencyTable".to_owned(),
                Physical::table(&var("WEBHOOKS_IDEMPOTENCY_TABLE")),
            ),
            (
                "DeliveryLogTable".to_owned(),
                Physical::table(&var("WEBHOOKS_DELIVERY_LOG_TABLE")),
            ),
            (
                "RateLimitTable".to_owned(),
                Physical::table(&var("WEBHOOKS_RATE_LIMIT_TABLE")),
            ),
            // The functions only name the API (for URLs in operational events).
            ("HttpApi".to_owned(), Physical::id("testapi")),
            (
                "SealingKeySecret".to_owned(),
                secret(crate::unique("sealing-key"), SEALING_KEY).await,
            ),
        ]);
        if !jwt.is_empty() {
            resources.insert(
                "JwtSigningSecret".to_owned(),
                secret(crate::unique("jwt-secret"), &jwt).await,
            );
        }
        if !access_check.is_empty() {
            resources.insert(
                "AccessCheckSigningSecret".to_owned(),
                secret(crate::unique("access-check-secret"), &access_check).await,
            );
        }
        for (logical, queue) in [
            ("EventsQueue", Queue::Events),
            ("EventsDeadLetterQueue", Queue::EventsDeadLetters),
            ("DeliveriesQueue", Queue::Deliveries),
            ("DeliveriesDeadLetterQueue", Queue::DeliveriesDeadLetters),
        ] {
            let found = SqsQueue::by_name(sqs.clone(), &format!("{prefix}-{}", queue.suffix()))
                .await
                .expect("the platform made its queues");
            resources.insert(logical.to_owned(), Physical::queue(found.url()));
        }
        let stack = Stack::new(&params, resources);
        Deployed { moto, stack }
    }

    /// Starts `function` with its template environment plus `extra` (test-only settings,
    /// such as letting receivers on loopback be reached), behind a gate with its role.
    pub async fn spawn(&self, function: Function, extra: &[(&str, &str)]) -> Running {
        let role = self.stack.role(function.logical_id);
        let gate = IamGate::start(crate::moto::endpoint(), role).await;
        let runtime = self.spawn_at(&gate.endpoint, function, extra).await;
        Running { runtime, gate }
    }

    /// Starts `function` like [`Deployed::spawn`] but straight on moto, without a gate
    /// (for timing its init).
    pub async fn spawn_ungated(&self, function: Function, extra: &[(&str, &str)]) -> Runtime {
        self.spawn_at(crate::moto::endpoint(), function, extra)
            .await
    }

    /// `function`'s environment as the template sets it.
    pub fn environment(&self, function: Function) -> Vec<(String, String)> {
        self.stack.environment(function.logical_id)
    }

    /// The value the template gives `function`'s variable `name`, if any.
    pub fn variable(&self, function: Function, name: &str) -> Option<String> {
        self.environment(function)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    async fn spawn_at(
        &self,
        endpoint: &str,
        function: Function,
        extra: &[(&str, &str)],
    ) -> Runtime {
        let mut env: Vec<(String, String)> = vec![
            ("AWS_ENDPOINT_URL".into(), endpoint.to_owned()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ];
        env.extend(self.environment(function));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut runtime = Runtime::start().await;
        runtime.spawn(function.binary, &env);
        runtime
    }
}

impl Running {
    /// The gate's verdict after a test drove every code path: nothing was refused and
    /// every grant of the role was used. Prints the calls, for the notes.
    pub fn assert_role_is_exact(&self) {
        for (action, resource) in self.gate.summary() {
            eprintln!("{}: {action} {resource}", self.gate.role.name);
        }
        self.gate.assert_nothing_refused();
        self.gate.assert_every_grant_used();
    }
}
