//! Starting the `webhooks-local` binary in tests (`webhooks_tests::local_process`).

use std::process::{Command, Stdio};

pub use webhooks_tests::local_process::LocalProcess as Runner;

/// Starts the binary with `envs`, its log at `warn` and to nowhere.
pub fn spawn(envs: &[(&str, &str)]) -> Runner {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_webhooks-local"));
    cmd.env("PORT", "0")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Runner::spawn(cmd)
}
