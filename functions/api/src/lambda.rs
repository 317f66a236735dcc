//! The Lambda edge: API Gateway's request becomes a plain `http::Request` (with the
//! authorizer's verified claims, when there are any) and the answer goes back; and the
//! [`Instance`] that holds the API for one Lambda instance.
//!
//! Guarantees of [`Instance`]:
//! - Init reads nothing over the network: the settings are checked then (a bad or missing
//!   one stops the cold start, as before), but the secrets are read at the first request,
//!   each with one `GetSecretValue`, at the same time. That is once per instance.
//! - A request that finds the secrets unreadable is answered `server_error` in the
//!   envelope, the reason goes to the log (never a secret's value), and the next request
//!   reads them again. A secret whose value is unusable is a configuration error: logged
//!   and answered the same way, and not read again.

use bytes::Bytes;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use webhooks_core::adapters::aws::{Aws, SecretArns, SecretError};
use webhooks_core::config::{ApiSettings, ConfigError, Defaults, FromEnv, JWT_SECRET, SECRET_KEY};
use webhooks_core::observe::telemetry::error_chain;

use crate::App;
use crate::app::Ports;
use crate::envelope::ApiError;
use crate::guard::AuthorizerClaims;

/// The API of one Lambda instance: settings checked at init, secrets read and the [`App`]
/// built at the first request.
pub struct Instance {
    aws: Aws,
    secrets: SecretArns,
    app: OnceCell<Result<App, ConfigError>>,
}

/// Why a request could not reach the API.
#[derive(Debug, thiserror::Error)]
enum NotReady {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("invalid configuration")]
    Config(#[source] ConfigError),
}

impl Instance {
    /// Checks the settings of the process environment; reads no secret yet.
    pub fn start(aws: Aws) -> Result<Self, ConfigError> {
        let secrets = SecretArns::from_env(&[SECRET_KEY, JWT_SECRET]);
        ApiSettings::check_before_secrets(
            &Defaults::lambda(),
            |name| std::env::var(name).ok(),
            &secrets.names(),
        )?;
        Ok(Self {
            aws,
            secrets,
            app: OnceCell::new(),
        })
    }

    /// The API, built at the first call that can read the secrets.
    async fn app(&self) -> Result<&App, NotReady> {
        let built = self.app.get_or_try_init(|| self.build()).await?;
        built.as_ref().map_err(|e| NotReady::Config(e.clone()))
    }

    /// Reads the secrets (the error is not kept: the next request reads again), then
    /// parses the settings (the error is kept: nothing it read can change).
    async fn build(&self) -> Result<Result<App, ConfigError>, SecretError> {
        let env = self.aws.read_secrets(&self.secrets).await?;
        let settings = match ApiSettings::from_lookup(&Defaults::lambda(), |k| env.get(k)) {
            Ok(settings) => settings,
            Err(e) => return Ok(Err(e)),
        };
        let ports = Ports::on_aws(&self.aws, &settings).await;
        Ok(Ok(App::new(settings, ports)))
    }

    /// Serves one API Gateway request.
    pub async fn serve(&self, req: lambda_http::Request) -> http::Response<Body> {
        match self.app().await {
            Ok(app) => handle(app, req).await,
            Err(e) => {
                // The whole chain: the SDK's sentence is in the sources. No part of it
                // holds a secret's value (`ConfigError` never echoes one).
                let reason: Vec<String> = error_chain(&e).map(ToString::to_string).collect();
                tracing::error!(error = %reason.join(": "), "the API cannot serve requests");
                to_lambda(crate::refuse(&plain_request(req), ApiError::server_error()))
            }
        }
    }
}

/// Serves one API Gateway request.
pub async fn handle(app: &App, req: lambda_http::Request) -> http::Response<Body> {
    to_lambda(crate::handle(app, plain_request(req)).await)
}

/// The request as the API's handler takes it, with the authorizer's claims.
fn plain_request(req: lambda_http::Request) -> http::Request<Bytes> {
    let claims = authorizer_claims(&req);
    let (parts, body) = req.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let mut plain = http::Request::from_parts(parts, body);
    if let Some(claims) = claims {
        plain.extensions_mut().insert(claims);
    }
    plain
}

fn to_lambda(answer: http::Response<Bytes>) -> http::Response<Body> {
    let (parts, body) = answer.into_parts();
    http::Response::from_parts(
        parts,
        Body::Text(String::from_utf8_lossy(&body).into_owned()),
    )
}

/// Claims from an HTTP API JWT authorizer or a Lambda authorizer, when the request
/// context carries them.
fn authorizer_claims(req: &lambda_http::Request) -> Option<AuthorizerClaims> {
    let authorizer = match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.authorizer.as_ref()?,
        RequestContext::ApiGatewayV1(ctx) => &ctx.authorizer,
        _ => return None,
    };
    let mut map = Map::new();
    if let Some(jwt) = &authorizer.jwt {
        for (k, v) in &jwt.claims {
            map.insert(k.clone(), Value::String(v.clone()));
        }
    }
    for (k, v) in &authorizer.fields {
        map.insert(k.clone(), v.clone());
    }
    // A Lambda authorizer may nest its context under `claims`.
    if let Some(Value::Object(nested)) = map.remove("claims") {
        map.extend(nested);
    }
    (!map.is_empty() && map.contains_key("sub")).then_some(AuthorizerClaims(map))
}
