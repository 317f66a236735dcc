//! The `webhooks-local` binary as a child process: its address and ready token read from
//! what it prints, the process killed when the handle goes. The binary's own tests and the
//! figures bench start it this way.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct LocalProcess {
    pub child: Child,
    pub base: String,
    pub token: String,
}

impl LocalProcess {
    /// Starts `cmd` (the runner binary, with its environment), and reads its address and
    /// ready token. Its standard output is drained to the end on a thread, so that the
    /// runner never writes to a closed pipe.
    pub fn spawn(mut cmd: Command) -> LocalProcess {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("webhooks-local starts");
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
        LocalProcess {
            child,
            base,
            token: token.expect("a ready token is printed").trim().to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LocalProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where cargo puts the release build of one of the workspace's binaries (leaked: a
/// bench asks for a handful, and `deployed::Function` keeps them as `&'static str`).
pub fn release_binary(name: &str) -> &'static str {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let path = target.join("release").join(name);
    Box::leak(path.to_string_lossy().into_owned().into_boxed_str())
}
