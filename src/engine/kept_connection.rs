//! SSH connections kept between tandem runs (`--ssh-persist SECONDS`, opt-in): CI runs
//! `plan`, `apply` and `verify` one after the other, and each would otherwise open its own
//! connection to every server (a key exchange each, most of a converged command's CPU).
//!
//! A kept connection is an OpenSSH master (`ControlPersist=SECONDS`: it exits by itself once
//! no run has used it for that long) whose control socket lives in a directory only this user
//! can enter (`$XDG_RUNTIME_DIR/tandem-ssh`, else `~/.cache/tandem/ssh`, mode 0700, checked).
//! Whoever can use that socket can already use this user's keys. A run **claims** a master
//! (renames its pointer file away), so two runs at once never share one (sshd's `MaxSessions`
//! counts a connection's channels), and publishes it again when it ends. A run that is killed
//! leaves its master unpublished; it exits after its idle time like any other.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use openssh::Session;
use sha2::{Digest, Sha256};

/// The prefix of the directories openssh makes for each master (its socket and log).
const MASTER_DIR_PREFIX: &str = ".ssh-connection";
/// A master's directory with no socket, or a claim, older than this is left over: removed.
const LEFT_OVER: Duration = Duration::from_secs(600);

/// A master this run holds: published again (under `pointer`) when the run closes it.
#[derive(Clone, Debug)]
pub struct Kept {
    pointer: PathBuf,
    /// The master's directory name in the store (`.ssh-connectionXXXXXX`).
    master_dir: String,
}

impl Kept {
    /// Makes the master findable by the next run (atomically: a run never reads half a name).
    pub fn publish(&self) {
        let tmp = self
            .pointer
            .with_extension(format!("new-{}", std::process::id()));
        if std::fs::write(&tmp, &self.master_dir).is_ok()
            && std::fs::rename(&tmp, &self.pointer).is_err()
        {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// The directory of kept masters: made and swept once per run (every server's connection
/// uses it); refused unless it is this user's alone.
pub fn store() -> anyhow::Result<PathBuf> {
    static STORE: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    STORE
        .get_or_init(|| {
            let dir = open_store().map_err(|e| format!("{e:#}"))?;
            sweep(&dir);
            Ok(dir)
        })
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

fn open_store() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(run) => PathBuf::from(run).join("tandem-ssh"),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .context("--ssh-persist keeps connections under $XDG_RUNTIME_DIR or ~/.cache: neither is set")?;
            PathBuf::from(home).join(".cache/tandem/ssh")
        }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    private(&dir)?;
    Ok(dir)
}

/// `dir` is a directory owned by this user that nobody else can enter.
fn private(dir: &Path) -> anyhow::Result<()> {
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != me || meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} must be a directory of this user that nobody else can enter (mode 0700): kept SSH connections are not used there",
            dir.display()
        );
    }
    Ok(())
}

/// Which master a connection may reuse: the same login, port and ssh_config file (and that
/// file's modification time: an edited config gets a new connection).
pub fn key(login: &str, port: Option<u16>, config_file: Option<&Path>) -> String {
    let config = config_file
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh/config")));
    let modified = config
        .as_deref()
        .and_then(|c| std::fs::metadata(c).ok())
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut hash = Sha256::new();
    for part in [
        login.to_string(),
        port.map(|p| p.to_string()).unwrap_or_default(),
        config.map(|c| c.display().to_string()).unwrap_or_default(),
        modified.to_string(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..12])
}

/// Takes the published master for `key` when there is one and it still answers.
pub async fn claim(store: &Path, key: &str) -> Option<(Session, Kept)> {
    let pointer = store.join(key);
    let claimed = store.join(format!("{key}.claimed-{}", std::process::id()));
    std::fs::rename(&pointer, &claimed).ok()?;
    let master_dir = std::fs::read_to_string(&claimed).ok();
    let _ = std::fs::remove_file(&claimed);
    let master_dir = master_dir?.trim().to_string();
    if !master_dir.starts_with(MASTER_DIR_PREFIX) || master_dir.contains('/') {
        return None;
    }
    let dir = store.join(&master_dir);
    let session = Session::resume(
        dir.join("master").into_boxed_path(),
        Some(dir.join("log").into_boxed_path()),
    );
    if session.check().await.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
        return None;
    }
    Some((
        session,
        Kept {
            pointer,
            master_dir,
        },
    ))
}

/// A master just opened in the store, kept: detached from this process (it is not ended when
/// the session is dropped or the run exits).
pub fn keep(session: Session, store: &Path, key: &str) -> (Session, Kept) {
    let (ctl, log) = session.detach();
    let master_dir = ctl
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (
        Session::resume(ctl, log),
        Kept {
            pointer: store.join(key),
            master_dir,
        },
    )
}

/// Removes what exited masters and killed runs left: master directories without a socket and
/// claims, once older than `LEFT_OVER` (a master being opened right now has no socket yet).
fn sweep(store: &Path) {
    let Ok(entries) = std::fs::read_dir(store) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let old = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > LEFT_OVER);
        if !old {
            continue;
        }
        if name.starts_with(MASTER_DIR_PREFIX) && !path.join("master").exists() {
            let _ = std::fs::remove_dir_all(&path);
        } else if name.contains(".claimed-") || name.contains(".new-") {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_tells_logins_ports_and_configs_apart() {
        let base = key("deploy@app1", None, Some(Path::new("/nonexistent/a")));
        assert_eq!(
            base,
            key("deploy@app1", None, Some(Path::new("/nonexistent/a")))
        );
        assert_ne!(
            base,
            key("root@app1", None, Some(Path::new("/nonexistent/a")))
        );
        assert_ne!(
            base,
            key("deploy@app1", Some(2222), Some(Path::new("/nonexistent/a")))
        );
        assert_ne!(
            base,
            key("deploy@app1", None, Some(Path::new("/nonexistent/b")))
        );
        assert!(base.chars().all(|c| c.is_ascii_hexdigit()) && base.len() == 24);
    }

    #[test]
    fn a_store_others_can_enter_is_refused() {
        let dir = std::env::temp_dir().join(format!("tandem-kept-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let refused = private(&dir).unwrap_err().to_string();
        assert!(refused.contains("nobody else can enter"), "{refused}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(private(&dir).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_sweep_removes_only_what_is_old_and_without_a_socket() {
        let dir = std::env::temp_dir().join(format!("tandem-kept-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let age = |path: &Path, seconds: u64| {
            let then = SystemTime::now() - Duration::from_secs(seconds);
            std::fs::File::open(path)
                .unwrap()
                .set_modified(then)
                .unwrap();
        };
        let exited = dir.join(".ssh-connectionOLD");
        let opening = dir.join(".ssh-connectionNEW");
        let running = dir.join(".ssh-connectionRUN");
        for d in [&exited, &opening, &running] {
            std::fs::create_dir_all(d).unwrap();
        }
        let _socket = std::os::unix::net::UnixListener::bind(running.join("master")).unwrap();
        let claim = dir.join("k.claimed-1");
        std::fs::write(&claim, ".ssh-connectionRUN").unwrap();
        let pointer = dir.join("k2");
        std::fs::write(&pointer, ".ssh-connectionRUN").unwrap();
        for old in [&exited, &running, &claim, &pointer] {
            age(old, 3600);
        }
        sweep(&dir);
        assert!(!exited.exists(), "an old directory whose master exited");
        assert!(
            opening.exists(),
            "a master being opened right now has no socket yet"
        );
        assert!(running.exists(), "a running master");
        assert!(!claim.exists(), "a claim of a killed run");
        assert!(
            pointer.exists(),
            "a published pointer is the claim's business, not the sweep's"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_pointer_to_anything_but_a_master_directory_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("tandem-kept-claim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for bad in ["../../etc", "/tmp/x", ".ssh-connection/../../x", "whatever"] {
            std::fs::write(dir.join("k"), bad).unwrap();
            assert!(claim(&dir, "k").await.is_none(), "{bad}");
            assert!(!dir.join("k").exists(), "a claimed pointer is taken away");
        }
        // A pointer to a master that is gone: not used, its directory removed.
        std::fs::create_dir_all(dir.join(".ssh-connectionABC")).unwrap();
        std::fs::write(dir.join("k"), ".ssh-connectionABC").unwrap();
        assert!(claim(&dir, "k").await.is_none());
        assert!(!dir.join(".ssh-connectionABC").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
