//! Test helper for the lab (tests/lab/lab): each scenario gets fresh servers of its own and
//! releases them when dropped, so scenarios never share state and can run in parallel.
//!
//! `Lab::get()` is `None` on a machine that cannot run the lab (not root), with a note on
//! stderr; in CI (`CI` set) or with `TANDEM_LAB=required` a missing lab is a test failure.

// Notes to the person running the tests go to stderr.
#![allow(clippy::print_stderr)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    Bookworm,
    Trixie,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Lab {
    script: PathBuf,
    pub ssh_config: PathBuf,
    pub key: PathBuf,
}

/// Runs `tests/lab/lab ARGS...` to the end; its stderr when it fails.
pub fn lab_command(args: &[&str]) -> Result<(), String> {
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    out.status
        .success()
        .then_some(())
        .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

pub fn required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
        || std::env::var("TANDEM_LAB").is_ok_and(|v| v == "required")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Lab {
    pub fn get() -> Option<Lab> {
        static PREPARED: OnceLock<Result<(), String>> = OnceLock::new();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab");
        if !is_root() {
            assert!(
                !required(),
                "the lab is required here (CI or TANDEM_LAB=required) but needs root"
            );
            eprintln!("NOTE: lab test not run: the lab needs root (tests/lab/README.md)");
            return None;
        }
        // Idempotent and quick once the rootfs are cached; builds them on a fresh machine.
        let prepared = PREPARED.get_or_init(|| lab_command(&["prepare", "bookworm", "trixie"]));
        if let Err(err) = prepared {
            panic!("lab prepare failed:\n{err}");
        }
        Some(Lab {
            script,
            ssh_config: PathBuf::from("/var/lib/tandem-lab/ssh_config"),
            key: PathBuf::from("/var/lib/tandem-lab/id_ed25519"),
        })
    }

    /// One fresh server.
    pub fn server(&self, suite: Suite) -> Server {
        let out = Command::new(&self.script)
            .args(["up", "--suite", suite.name()])
            .stdin(Stdio::null())
            .output()
            .expect("running tests/lab/lab up");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "lab up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut words = stdout.split_whitespace();
        let name = words.next().expect("lab up printed a name").to_string();
        let ip = words.next().expect("lab up printed an address").to_string();
        Server {
            lab: self.clone(),
            name,
            ip,
            suite,
        }
    }

    /// `n` fresh servers, booted concurrently.
    pub fn servers(&self, n: usize, suite: Suite) -> Vec<Server> {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let lab = self.clone();
                thread::spawn(move || lab.server(suite))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("booting a lab server"))
            .collect()
    }
}

/// A running lab server; deleted when dropped.
#[derive(Debug)]
pub struct Server {
    lab: Lab,
    pub name: String,
    pub ip: String,
    pub suite: Suite,
}

impl Server {
    /// Runs `script` with `sh` on the server as root.
    /// The script goes on stdin, so nothing it holds (test passwords) shows up in any argv.
    pub fn ssh(&self, script: &str) -> Output {
        ssh_stdin(&self.lab.ssh_config, &self.name, "sh -s", script)
    }

    /// Runs `script`, fails the test unless it succeeds, returns its stdout.
    pub fn run(&self, script: &str) -> String {
        let out = self.ssh(script);
        assert!(
            out.status.success(),
            "on {}: `{script}` failed ({}):\n{}{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `script` until it succeeds or `timeout` passes.
    pub fn wait_until(&self, script: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.ssh(script).status.success() {
                return true;
            }
            thread::sleep(Duration::from_millis(300));
        }
        false
    }

    /// Cuts the server's power (`lab poweroff`): no clean stop, its disk kept.
    pub fn poweroff(&self) {
        lab_command(&["poweroff", &self.name])
            .unwrap_or_else(|e| panic!("lab poweroff {}: {e}", self.name));
    }

    /// Powers it on again from its disk (`lab start`), once SSH answers.
    pub fn start(&self) {
        lab_command(&["start", &self.name])
            .unwrap_or_else(|e| panic!("lab start {}: {e}", self.name));
    }

    /// apt-get with retries: mirrors fail now and then, tests must not.
    pub fn apt_install(&self, packages: &str) {
        self.run(&format!(
            "export DEBIAN_FRONTEND=noninteractive; for i in 1 2 3; do \
             apt-get update -qq && apt-get install -y -qq {packages} >/dev/null && exit 0; sleep $((i*3)); done; exit 1"
        ));
    }
}

/// `ssh -F config destination remote_command` with `script` written to its stdin.
pub fn ssh_stdin(config: &Path, destination: &str, remote_command: &str, script: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(["-o", "BatchMode=yes", destination, remote_command])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running ssh");
    let mut stdin = child.stdin.take().expect("ssh stdin");
    // A server that already closed the connection is reported through the exit status.
    let _ = stdin.write_all(script.as_bytes());
    drop(stdin);
    child.wait_with_output().expect("waiting for ssh")
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(&self.lab.script)
            .args(["down", &self.name])
            .stdin(Stdio::null())
            .output();
    }
}

/// `let lab = lab_or_skip!();`: the lab, or return from the test where it cannot run.
#[macro_export]
macro_rules! lab_or_skip {
    () => {
        match $crate::support::lab::Lab::get() {
            Some(lab) => lab,
            None => return,
        }
    };
}
