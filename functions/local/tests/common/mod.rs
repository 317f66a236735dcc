//! Starting the `webhooks-local` binary in tests: its address and ready token read from
//! what it prints, the process killed when the handle goes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Runner {
    pub child: Child,
    pub base: String,
    pub token: String,
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `envs`, and reads its address and ready token. Its standard
/// output is drained to the end on a thread, so that the runner never writes to a closed
/// pipe.
pub fn spawn(envs: &[(&str, &str)]) -> Runner {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_webhooks-local"));
    cmd.env("PORT", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    let base = first
        .strip_prefix("webhooks-local listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let mut token = None;
    while let Some(Ok(line)) = lines.next() {
        if line.starts_with("ready bearer token") {
            token = lines.next().and_then(Result::ok);
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Runner {
        child,
        base,
        token: token.expect("a ready token is printed").trim().to_owned(),
    }
}
