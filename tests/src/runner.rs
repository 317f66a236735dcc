//! Starts the local runner in this process, on a free port, with chosen settings.

use std::collections::HashMap;
use std::net::SocketAddr;

use webhooks_core::config::{Defaults, FromEnv, Settings};
use webhooks_local::{Backend, Running};

use crate::{moto, unique};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Aws,
}

/// The settings the runner reads from the environment, from these variables instead.
pub fn settings(vars: &[(&str, &str)]) -> Settings {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_lookup(&Defaults::local(), |k| map.get(k).cloned()).expect("valid test settings")
}

/// A runner on 127.0.0.1 with a free port; on the AWS backend, with tables of its own in moto.
pub async fn start(kind: Kind, vars: &[(&str, &str)]) -> Running {
    let table = unique("subs");
    let (idem, log, prefix) = (unique("idem"), unique("log"), unique("q"));
    let rate = unique("rate");
    let mut vars = vars.to_vec();
    vars.push(("WEBHOOKS_IDEMPOTENCY_TABLE", &idem));
    vars.push(("WEBHOOKS_DELIVERY_LOG_TABLE", &log));
    if !vars.iter().any(|(k, _)| *k == "WEBHOOKS_RATE_LIMIT_TABLE") {
        vars.push(("WEBHOOKS_RATE_LIMIT_TABLE", &rate));
    }
    vars.push(("WEBHOOKS_QUEUE_PREFIX", &prefix));
    if !vars
        .iter()
        .any(|(k, _)| *k == "WEBHOOKS_SUBSCRIPTIONS_TABLE")
    {
        vars.push(("WEBHOOKS_SUBSCRIPTIONS_TABLE", &table));
    }
    let backend = match kind {
        Kind::Memory => Backend::Memory,
        Kind::Aws => Backend::Aws(Box::new(moto::sdk_config().await)),
    };
    webhooks_local::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &backend,
        settings(&vars),
    )
    .await
    .expect("the local runner starts")
}
