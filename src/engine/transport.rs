//! `Transport`: how tandem runs a script on a server. `Ssh` is the real one: one multiplexed
//! OpenSSH connection per host through the system `ssh` (so ~/.ssh/config, the agent, jump
//! hosts and known_hosts just work). Scripts travel on stdin, never in argv, and run as root:
//! directly when logged in as root, through `sudo -n` otherwise.

use openssh::Stdio;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Destination;
use crate::engine::kept_connection::{self, Kept};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// What a remote script returned.
#[derive(Clone, Debug, Default)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The part of stderr that explains a failure, for error messages: from the last Python
    /// traceback, or else from the first line among the last 40 that says error/failed (apt's
    /// `E:`, pip's `ERROR:`, a psql `ERROR:`), at most 40 lines; otherwise the last 8.
    pub fn stderr_tail(&self) -> String {
        failure_excerpt(&String::from_utf8_lossy(&self.stderr))
    }
}

/// Lines at most in a failure excerpt, and in the plain tail.
const EXCERPT_LINES: usize = 40;
const TAIL_LINES: usize = 8;

fn failure_excerpt(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let window = lines.len().saturating_sub(EXCERPT_LINES);
    let says_why = |line: &&str| {
        let lower = line.to_ascii_lowercase();
        line.starts_with("E: ")
            || lower.contains("error")
            || lower.contains("failed")
            || lower.contains("fatal")
    };
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("Traceback (most recent call last)"))
        .filter(|&i| i >= window)
        .or_else(|| {
            lines[window..]
                .iter()
                .position(says_why)
                .map(|i| i + window)
        })
        .unwrap_or(lines.len().saturating_sub(TAIL_LINES));
    let end = (start + EXCERPT_LINES).min(lines.len());
    lines[start..end].join("\n")
}

/// Runs scripts on one host as root. `Ssh` is the implementation.
pub trait Transport: Send + Sync {
    /// The server's name in tandem.yml, for messages.
    fn name(&self) -> &str;
    /// Runs `script` with `sh` as root; the script is sent on stdin.
    fn run(&self, script: &str) -> impl Future<Output = anyhow::Result<Output>> + Send;
    /// `run`, handing each line of the script's stderr to `line` as it arrives.
    fn run_watched(
        &self,
        script: &str,
        line: &(dyn Fn(&str) + Send + Sync),
    ) -> impl Future<Output = anyhow::Result<Output>> + Send;
}

/// How to reach servers: the system ssh with these options.
#[derive(Clone, Debug, Default)]
pub struct SshOptions {
    /// `ssh -F FILE` instead of ~/.ssh/config.
    pub config_file: Option<PathBuf>,
    /// Accept and remember the key of a host never seen before (a changed key is always refused).
    pub accept_new_host_keys: bool,
    /// Log in as this user where the configured one cannot log in yet (a fresh server's root).
    pub bootstrap_user: Option<String>,
    /// Keep each connection as the configured user open this long after the run and reuse it
    /// in the next run (`--ssh-persist`; see `kept_connection`).
    pub persist: Option<Duration>,
}

/// One server's multiplexed connection. A clone shares the session (work that runs beside
/// the engine's, e.g. verify's scripts during the probe); `close` ends the master only once
/// no clone is left.
#[derive(Clone)]
pub struct Ssh {
    name: String,
    session: Arc<Session>,
    /// Who we logged in as, for messages.
    pub login: String,
    /// A kept connection (`--ssh-persist`): published for the next run instead of closed.
    kept: Option<Kept>,
}

/// The remote login shell runs this; the script itself follows on stdin.
const ELEVATE: &str = r#"if [ "$(id -u)" -eq 0 ]; then exec sh -s; else exec sudo -n sh -s; fi"#;

impl Ssh {
    /// Opens the master connection to `destination` for server `name`.
    pub async fn connect(
        name: &str,
        destination: &str,
        options: &SshOptions,
    ) -> anyhow::Result<Ssh> {
        which::which("ssh").context(
            "tandem runs the system `ssh` client, which is not installed: apt-get install openssh-client",
        )?;
        // Validated in the config already; refused here too, so no caller can hand ssh an option.
        let dest = Destination::parse(destination)
            .map_err(|why| anyhow::anyhow!("{name}: ssh destination `{destination}`: {why}"))?;
        match Self::connect_as(name, &dest, dest.user.clone(), options).await {
            Ok(ssh) => Ok(ssh),
            Err(first) => {
                let Some(user) = &options.bootstrap_user else {
                    return Err(first);
                };
                if dest.user.as_deref() == Some(user.as_str()) {
                    return Err(first);
                }
                Self::connect_as(name, &dest, Some(user.clone()), options)
                    .await
                    .with_context(|| format!("{first:#}; and as bootstrap user {user}"))
            }
        }
    }

    /// `connect`, retried with backoff (0.5 + 1 + 2 + 4 s) while the failure is one a server
    /// gives for a moment: right after `reload ssh`, or with sshd's `MaxStartups` full on a
    /// busy host, a CI job must not fail for it. Anything else (a refused key, a changed host
    /// key, a name that does not resolve) fails at once. `retrying` hears each retry.
    pub async fn connect_retrying(
        name: &str,
        destination: &str,
        options: &SshOptions,
        retrying: &(dyn Fn(&str) + Send + Sync),
    ) -> anyhow::Result<Ssh> {
        let mut wait = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match Self::connect(name, destination, options).await {
                Err(e) if attempt < CONNECT_ATTEMPTS && is_transient(&e) => {
                    retrying(&format!(
                        "cannot connect yet (attempt {attempt} of {CONNECT_ATTEMPTS}), retrying in {wait:?}: {}",
                        format!("{e:#}").lines().next().unwrap_or("")
                    ));
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn connect_as(
        name: &str,
        dest: &Destination,
        user: Option<String>,
        options: &SshOptions,
    ) -> anyhow::Result<Ssh> {
        let login = format!(
            "{}{}",
            user.as_deref().map(|u| format!("{u}@")).unwrap_or_default(),
            dest.host
        );
        // Only the configured login is kept: a bootstrap user's (root) never outlives the run.
        let keep = match options.persist {
            Some(idle) if user == dest.user => {
                let store = kept_connection::store()?;
                let key = kept_connection::key(&login, dest.port, options.config_file.as_deref());
                if let Some((session, kept)) = kept_connection::claim(&store, &key).await {
                    return Ok(Ssh {
                        name: name.to_string(),
                        session: Arc::new(session),
                        login,
                        kept: Some(kept),
                    });
                }
                Some((store, key, idle))
            }
            _ => None,
        };
        let mut builder = SessionBuilder::default();
        builder
            .known_hosts_check(if options.accept_new_host_keys {
                KnownHosts::Add
            } else {
                KnownHosts::Strict
            })
            .connect_timeout(Duration::from_secs(10))
            .server_alive_interval(Duration::from_secs(10))
            .control_directory(match &keep {
                Some((store, _, _)) => store.clone(),
                None => control_dir()?,
            });
        if let Some((_, _, idle)) = &keep {
            let seconds = std::num::NonZeroUsize::new(idle.as_secs().max(1) as usize)
                .unwrap_or(std::num::NonZeroUsize::MIN);
            builder.control_persist(ControlPersist::IdleFor(seconds));
        }
        if let Some(file) = &options.config_file {
            builder.config_file(file);
        }
        if let Some(user) = &user {
            builder.user(user.clone());
        }
        if let Some(port) = dest.port {
            builder.port(port);
        }
        let session = builder
            .connect(&dest.host)
            .await
            .map_err(|err| explain_connect_error(name, &login, err))?;
        let (session, kept) = match keep {
            Some((store, key, _)) => {
                let (session, kept) = kept_connection::keep(session, &store, &key);
                (session, Some(kept))
            }
            None => (session, None),
        };
        Ok(Ssh {
            name: name.to_string(),
            session: Arc::new(session),
            login,
            kept,
        })
    }

    /// Ends the connection once no clone is left; a kept one is published for the next run.
    pub async fn close(self) {
        if let Ok(session) = Arc::try_unwrap(self.session) {
            match self.kept {
                Some(kept) => kept.publish(),
                None => {
                    let _ = session.close().await;
                }
            }
        }
    }

    /// Takes the host's apply lock (`/var/lib/tandem/lock`, flock): held by a remote process
    /// until the returned guard is dropped or the connection dies, so a killed run never leaves
    /// it behind. Waits up to `wait` for another holder, naming it.
    pub async fn lock(
        &self,
        who: &str,
        wait: Duration,
        report: &dyn crate::model::report::Report,
    ) -> anyhow::Result<RemoteLock> {
        self.take_lock(who, Some(wait), report)
            .await?
            .with_context(|| format!("{}: the lock was not taken", self.name))
    }

    /// `lock` without waiting: None when another run holds the lock, or remote work of a
    /// cut-off run still runs (nothing is said; the caller waits with `lock` then).
    pub async fn try_lock(
        &self,
        who: &str,
        report: &dyn crate::model::report::Report,
    ) -> anyhow::Result<Option<RemoteLock>> {
        self.take_lock(who, None, report).await
    }

    async fn take_lock(
        &self,
        who: &str,
        wait: Option<Duration>,
        report: &dyn crate::model::report::Report,
    ) -> anyhow::Result<Option<RemoteLock>> {
        let (lock_wait, work_wait) = match wait.map(|w| w.as_secs().max(1)) {
            Some(secs) => (
                format!(
                    "echo \"waiting $(cat /var/lib/tandem/lock.owner 2>/dev/null)\"; \
                     flock -w {secs} 9 || {{ echo \"timeout $(cat /var/lib/tandem/lock.owner 2>/dev/null)\"; exit 75; }}"
                ),
                format!("echo busy; flock -w {secs} 8 || {{ echo worktimeout; exit 75; }}"),
            ),
            None => (
                "echo contended; exit 75".into(),
                "echo contended; exit 75".into(),
            ),
        };
        let wait = wait.unwrap_or_default();
        let script = format!(
            "umask 077\nmkdir -p /var/lib/tandem\nexec 9>>/var/lib/tandem/lock\n\
             if ! flock -n 9; then {lock_wait}; fi\n\
             printf '%s\\n' {who} >/var/lib/tandem/lock.owner\n\
             exec 8>>{work}\n\
             if ! flock -n 8; then {work_wait}; fi\n\
             flock -u 8\nexec 8>&-\necho locked\ncat >/dev/null\n",
            work = crate::resource::script::WORK_LOCK,
            who = crate::config::identifier::shell_word(who),
        );
        let mut child = Session::arc_raw_command(self.session.clone(), ELEVATE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .await
            .with_context(|| format!("taking the lock on {}", self.name))?;
        let mut stdin = child.stdin().take().context("remote stdin")?;
        stdin.write_all(script.as_bytes()).await?;
        stdin.flush().await?;
        let stdout = child.stdout().take().context("remote stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await? {
            if line == "locked" {
                return Ok(Some(RemoteLock { stdin, child }));
            }
            if line == "contended" {
                let _ = child.wait().await;
                return Ok(None);
            }
            if let Some(owner) = line.strip_prefix("waiting") {
                report.progress(
                    &self.name,
                    &format!(
                        "waiting up to {}s for the lock held by{owner}",
                        wait.as_secs()
                    ),
                );
            }
            if line == "busy" {
                report.progress(
                    &self.name,
                    &format!(
                        "waiting up to {}s for remote work of an earlier run that was cut off (it still runs there)",
                        wait.as_secs()
                    ),
                );
            }
            if line == "worktimeout" {
                bail!(
                    "{}: remote work of an earlier, cut-off run still runs after {}s (see `ps` there and /var/lib/tandem/audit.log); wait for it, or end it",
                    self.name,
                    wait.as_secs()
                );
            }
            if let Some(owner) = line.strip_prefix("timeout") {
                bail!(
                    "{}: another tandem run still holds /var/lib/tandem/lock after {}s (held by{owner}); wait for it to finish, or end it",
                    self.name,
                    wait.as_secs()
                );
            }
        }
        bail!(
            "{}: the lock holder ended before taking the lock",
            self.name
        )
    }
}

/// This process's private directory for SSH control sockets. Created on first use, with a
/// watchdog that ends the SSH masters in it and removes it once tandem exits, however it
/// exits: the masters run detached (`ssh -f`), so without it a killed run would leave them
/// and their sockets behind. The watchdog waits for end-of-file on a pipe that only this
/// process holds; the kernel closes it when tandem exits, `kill -9` included.
fn control_dir() -> anyhow::Result<PathBuf> {
    static DIR: std::sync::OnceLock<Result<(PathBuf, std::process::ChildStdin), String>> =
        std::sync::OnceLock::new();
    let made = DIR.get_or_init(|| {
        use std::os::unix::fs::DirBuilderExt;
        use std::os::unix::process::CommandExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!("tandem-ssh-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut watchdog = std::process::Command::new("sh")
            .args([
                "-c",
                "cat >/dev/null
                 for s in \"$1\"/.ssh-connection*/master; do
                   [ -S \"$s\" ] && ssh -F /dev/null -S \"$s\" -O exit tandem >/dev/null 2>&1
                 done
                 rm -rf \"$1\"",
                "tandem-ssh-watchdog",
            ])
            .arg(&dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // Its own process group: a Ctrl-C to tandem's group must not end it first.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting the ssh watchdog: {e}"))?;
        let stdin = watchdog.stdin.take().ok_or("watchdog stdin")?;
        Ok((dir, stdin))
    });
    match made {
        Ok((dir, _)) => Ok(dir.clone()),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

fn explain_connect_error(name: &str, login: &str, err: openssh::Error) -> anyhow::Error {
    let text = format!("{err:#}");
    let detail = std::error::Error::source(&err)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let all = format!("{text} {detail}");
    let hint =
        if all.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || all.contains("Host key for") {
            "the server's host key CHANGED since it was recorded in known_hosts: refusing. If the \
         server was really rebuilt, remove the old key with `ssh-keygen -R HOST` after checking \
         the new fingerprint out of band"
        } else if all.contains("Host key verification failed")
            || all.contains("No ED25519 host key is known")
        {
            "the server's host key is not in known_hosts: check its fingerprint, then connect once \
         with ssh, or pass --accept-new-host-keys"
        } else if all.contains("Permission denied") {
            "the key was refused: is your key in the user's authorized_keys? For a fresh server, \
         pass --bootstrap-user root"
        } else {
            "check that the server is up and the ssh destination in tandem.yml is right"
        };
    anyhow::anyhow!("connecting to {name} ({login}): {text} {detail}\nhint: {hint}")
}

/// Connects to every `(name, destination)` at once, each as `Ssh::connect_retrying` does
/// (`retrying` hears `(name, why)`). When any fails, closes the others and reports every
/// server's state ([`Unreachable`]).
pub async fn connect_all(
    targets: &[(&str, &str)],
    options: &SshOptions,
    retrying: &(dyn Fn(&str, &str) + Send + Sync),
) -> anyhow::Result<Vec<Ssh>> {
    let results =
        futures::future::join_all(targets.iter().map(|&(name, destination)| async move {
            let retrying = |why: &str| retrying(name, why);
            Ssh::connect_retrying(name, destination, options, &retrying).await
        }))
        .await;
    if results.iter().all(Result::is_ok) {
        return Ok(results.into_iter().flatten().collect());
    }
    let mut servers = Vec::new();
    for (result, (name, _)) in results.into_iter().zip(targets) {
        servers.push(ServerConnection {
            name: name.to_string(),
            error: result.as_ref().err().map(|e| format!("{e:#}")),
        });
        if let Ok(host) = result {
            host.close().await;
        }
    }
    Err(Unreachable { servers }.into())
}

/// Some servers could not be reached: each server's state, the reached ones included (their
/// connections are closed: nothing ran anywhere).
#[derive(Debug)]
pub struct Unreachable {
    pub servers: Vec<ServerConnection>,
}

/// One server's connection attempt: `error` is why it failed, `None` when it was reached.
#[derive(Debug)]
pub struct ServerConnection {
    pub name: String,
    pub error: Option<String>,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let errors: Vec<&str> = self
            .servers
            .iter()
            .filter_map(|s| s.error.as_deref())
            .collect();
        f.write_str(&errors.join("\n"))
    }
}

impl std::error::Error for Unreachable {}

/// Attempts of `Ssh::connect_retrying`.
const CONNECT_ATTEMPTS: u32 = 5;

/// Whether a connection failure is one a reachable server gives for a moment (sshd
/// re-executing after a reload, or dropping new connections while `MaxStartups` is full),
/// as opposed to one that repeating cannot mend.
fn is_transient(err: &anyhow::Error) -> bool {
    let text = format!("{err:#}");
    if text.contains("Permission denied") || text.contains("Host key") {
        return false;
    }
    [
        "Connection refused",
        "Connection reset by peer",
        "Connection closed by remote host",
        "kex_exchange_identification",
        "banner exchange",
    ]
    .iter()
    .any(|sign| text.contains(sign))
}

/// The remote process holding a host's apply lock; dropping it releases the lock.
pub struct RemoteLock {
    stdin: openssh::ChildStdin,
    child: openssh::Child<Arc<Session>>,
}

impl RemoteLock {
    /// Releases the lock and waits until the remote holder has ended (dropping it does not
    /// wait): the lock is free on return.
    pub async fn release(self) {
        drop(self.stdin);
        let _ = self.child.wait().await;
    }
}

impl Ssh {
    /// `Transport::run_watched`: progress for long steps (apt, pip, migrations).
    async fn run_streaming(
        &self,
        script: &str,
        line: &(dyn Fn(&str) + Send + Sync),
    ) -> anyhow::Result<Output> {
        let mut child = self
            .session
            .raw_command(ELEVATE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .with_context(|| format!("starting a command on {}", self.name))?;
        let mut stdin = child.stdin().take().context("remote stdin")?;
        let mut stdout = child.stdout().take().context("remote stdout")?;
        let stderr = child.stderr().take().context("remote stderr")?;
        let send = async {
            stdin
                .write_all(script.as_bytes())
                .await
                .context("sending the script")?;
            stdin.shutdown().await.ok();
            drop(stdin);
            Ok::<_, anyhow::Error>(())
        };
        let read_stdout = async {
            let mut out = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut out).await?;
            Ok::<_, std::io::Error>(out)
        };
        let read_stderr = async {
            let mut collected = Vec::new();
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                if reader.read_until(b'\n', &mut buf).await? == 0 {
                    break;
                }
                collected.extend_from_slice(&buf);
                line(String::from_utf8_lossy(&buf).trim_end());
            }
            Ok::<_, std::io::Error>(collected)
        };
        let (sent, stdout, stderr) = tokio::join!(send, read_stdout, read_stderr);
        sent?;
        let status = child
            .wait()
            .await
            .with_context(|| format!("running a script on {}", self.name))?;
        self.checked(Output {
            status: status.code().unwrap_or(-1),
            stdout: stdout.with_context(|| format!("reading from {}", self.name))?,
            stderr: stderr.with_context(|| format!("reading from {}", self.name))?,
        })
    }

    /// A local `ssh` process that runs `remote` (a command line for the server's login shell)
    /// over this connection, on the caller's stdin/stdout/stderr: with a terminal (`tty`) for
    /// what the operator interacts with (`manage shell`, `createsuperuser`).
    pub fn attached(&self, remote: &str, tty: bool) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-S")
            .arg(self.session.control_socket())
            .args(["-o", "BatchMode=yes", if tty { "-t" } else { "-T" }])
            // ssh needs a destination, but the control socket decides where this goes.
            .arg("none")
            .arg(remote);
        cmd
    }

    /// Turns sudo's password prompt into what to do about it.
    fn checked(&self, output: Output) -> anyhow::Result<Output> {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status != 0 && stderr.contains("sudo:") && stderr.contains("password") {
            bail!(
                "sudo on {} ({}) asks for a password. tandem runs `sudo -n`: give the user \
                 passwordless sudo (a file in /etc/sudoers.d with `USER ALL=(ALL:ALL) NOPASSWD: ALL`), \
                 or log in as root",
                self.name,
                self.login
            );
        }
        Ok(output)
    }
}

impl Transport for Ssh {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run_watched(
        &self,
        script: &str,
        line: &(dyn Fn(&str) + Send + Sync),
    ) -> anyhow::Result<Output> {
        self.run_streaming(script, line).await
    }

    /// Sends the script while reading both outputs (a script bigger than a pipe, like a
    /// release with its bundle, cannot stall against output the server is writing).
    async fn run(&self, script: &str) -> anyhow::Result<Output> {
        self.run_streaming(script, &|_| {}).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_excerpt_starts_where_the_failure_is_explained() {
        let noise: String = (0..30).map(|i| format!("Collecting pkg{i}\n")).collect();
        let traceback = "Traceback (most recent call last):\n  File \"manage.py\", line 22\n\
            django.core.exceptions.ImproperlyConfigured: SECRET_KEY\n";
        let text = format!("{noise}{traceback}");
        let excerpt = failure_excerpt(&text);
        assert!(excerpt.starts_with("Traceback"), "{excerpt}");
        assert!(
            excerpt.ends_with("ImproperlyConfigured: SECRET_KEY"),
            "{excerpt}"
        );

        let apt = format!("{noise}E: Unable to locate package nginxx\nexit 100\n");
        assert!(failure_excerpt(&apt).starts_with("E: Unable to locate package nginxx"));

        // Nothing says why: the last 8 lines, as before.
        assert_eq!(failure_excerpt(&noise).lines().count(), 8);
        // A long explanation is cut at 40 lines.
        let long: String = (0..100).map(|i| format!("error {i}\n")).collect();
        assert_eq!(failure_excerpt(&long).lines().count(), 40);
    }

    #[test]
    fn only_momentary_connection_failures_are_retried() {
        let err = |text: &str| anyhow::anyhow!("connecting to app1 (deploy@tl10): {text}");
        for transient in [
            "failed to connect to the remote host connect to host 10.77.0.10 port 22: Connection refused",
            "kex_exchange_identification: read: Connection reset by peer",
            "kex_exchange_identification: Connection closed by remote host",
            "Connection timed out during banner exchange",
        ] {
            assert!(is_transient(&err(transient)), "{transient}");
        }
        for lasting in [
            "deploy@10.77.0.10: Permission denied (publickey).",
            "Host key verification failed.",
            "ssh: Could not resolve hostname nope: Name or service not known",
            "connect to host 10.77.0.99 port 22: No route to host",
            "connect to host 10.77.0.99 port 22: Connection timed out",
        ] {
            assert!(!is_transient(&err(lasting)), "{lasting}");
        }
    }
}
