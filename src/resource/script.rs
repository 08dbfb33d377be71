//! Building the shell scripts apply runs on a host. Every dynamic word is quoted; payloads
//! (file contents, SQL with verifiers) travel as base64 inside a heredoc of the script, which
//! itself is sent on stdin: nothing secret ever appears in a command line.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::identifier::shell_word;
use crate::model::desired::FileSpec;

/// Where backups of replaced files go: `/var/lib/tandem/backups/<run>/<path with / as %>`.
pub const STATE_DIR: &str = "/var/lib/tandem";

/// Held (shared) by every script that changes a host, for as long as it runs, even when the
/// tandem that started it was killed; a new run's lock waits for it exclusively (see
/// `Ssh::lock`), so it never starts while a killed run's apt or release is still going.
pub const WORK_LOCK: &str = "/var/lib/tandem/work.lock";

/// Handlers a change has made owed, one empty file each, named after the handler: written
/// before the change runs and removed when the handler has run, so a run that dies in between
/// leaves the reload to the next run (which probes this directory).
pub const OWED_DIR: &str = "/var/lib/tandem/owed";

/// tandem's own work on a server (the probe's queries; a release's unpacking, Django checks,
/// migrations, collectstatic and health check) yields the CPU to the requests being served:
/// the script's processes run at nice 10 and, where the kernel groups a session's processes
/// for the scheduler (autogroup, on when no CPU cgroup separates them), so does the script's
/// group. On an idle server it changes nothing. gunicorn's units are started by systemd and
/// keep their own priority.
pub const YIELD_TO_SERVING: &str = "echo 10 >/proc/self/autogroup 2>/dev/null || true\n\
    renice -n 10 -p $$ >/dev/null 2>&1 || true\n";

/// The probe query listing the owed handlers.
pub const OWED_PROBE: &str = "ls -1 /var/lib/tandem/owed 2>/dev/null; true";

/// `script` run under the shared work lock, with a `started:` line in the audit log first, so
/// a change that never finished (tandem killed, connection lost) still shows in the log; the
/// handlers it notifies (`owes`) are recorded as owed before it changes anything.
pub fn held(script: &str, run_id: &str, who: &str, what: &str, owes: &[String]) -> String {
    let owed: String = owes
        .iter()
        .map(|h| format!(": >{}\n", owed_path(h)))
        .collect();
    format!(
        "TANDEM_UMASK=$(umask)\numask 077\nTANDEM_BY={who}\nmkdir -p {STATE_DIR} {OWED_DIR}\nexec 8>>{WORK_LOCK}\nflock -s 8\n\
         printf '%s run=%s by=%s started: %s\\n' \"$(date -Is)\" {run} {who} {what} >>{STATE_DIR}/audit.log\n\
         {owed}umask \"$TANDEM_UMASK\"\n{script}",
        run = shell_word(run_id),
        who = shell_word(who),
        what = shell_word(&what.replace('\n', " ")),
    )
}

/// Where handler `name` is recorded as owed (quoted for the shell).
pub fn owed_path(name: &str) -> String {
    shell_word(&format!("{OWED_DIR}/{}", owed_file(name)))
}

/// The file name under `OWED_DIR` that records handler `name` (as the probe lists it).
pub fn owed_file(name: &str) -> String {
    name.replace('/', "_")
}

/// `NAME=value` lines, each value quoted: how a script kept as a file under scripts/ gets what
/// it works on (the file itself never has a value pasted into it).
/// Shell that exports the env file's variables and the release's own `DJANGO_STATIC_ROOT`
/// (`engine::vars::Vars::static_root_in`; never in the env file, which would override a
/// unit's) for a manage.py run. A brace group, so it chains with `&&`; both arguments are
/// shell words.
pub fn django_environment(env_file: &str, static_root: &str) -> String {
    format!("{{ set -a; . {env_file}; DJANGO_STATIC_ROOT={static_root}; set +a; }}")
}

pub fn assignments(values: &[(&str, &str)]) -> String {
    values
        .iter()
        .map(|(name, value)| {
            debug_assert!(
                name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{name}"
            );
            format!("{name}={}\n", shell_word(value))
        })
        .collect()
}

/// A command that decodes `data` from a heredoc, followed by `rest` (a redirection or a pipe)
/// on the same line: `base64 -d <<'TANDEM_DATA' >"$TMP"` ... `TANDEM_DATA`.
pub fn payload(data: &[u8], rest: &str) -> String {
    let encoded = STANDARD.encode(data);
    let mut lines = String::new();
    for chunk in encoded.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        lines.push('\n');
    }
    format!("base64 -d <<'TANDEM_DATA' {rest}\n{lines}TANDEM_DATA")
}

/// Saves the current `$DEST` (if any) to the run's backup directory; sets `$BACKUP`.
fn backup(run_id: &str) -> String {
    format!(
        "BACKUP=\"{STATE_DIR}/backups/{run}/$(printf %s \"$DEST\" | tr / %)\"\n\
         if [ -e \"$DEST\" ] || [ -L \"$DEST\" ]; then mkdir -p \"$(dirname \"$BACKUP\")\"; cp -a \"$DEST\" \"$BACKUP\"; else BACKUP=; fi\n",
        run = shell_word(run_id)
    )
}

/// Puts the previous `$DEST` back (or removes a file that did not exist).
pub const RESTORE: &str = "restore() { if [ -n \"$BACKUP\" ]; then cp -a \"$BACKUP\" \"$DEST\"; else rm -f \"$DEST\"; fi; }\n";

/// Writes a file atomically (temp file in the same directory, then rename) with its mode and
/// owner set before it becomes visible, keeps a backup, and validates: a `{path}` validator
/// checks the temp file before the swap; any other validator runs after the swap and the
/// previous file is restored when it fails.
pub fn write_file(file: &FileSpec, run_id: &str) -> String {
    let mut s = String::from("set -e\numask 077\n");
    s.push_str(&format!("DEST={}\n", shell_word(&file.path)));
    s.push_str("mkdir -p \"$(dirname \"$DEST\")\"\nTMP=\"$DEST.tandem-new\"\n");
    s.push_str(&backup(run_id));
    s.push_str(RESTORE);
    s.push_str(&format!(
        "{}\n",
        payload(file.content.as_bytes(), ">\"$TMP\"")
    ));
    s.push_str(&format!(
        "chown {}:{} \"$TMP\"\nchmod {} \"$TMP\"\n",
        shell_word(&file.owner),
        shell_word(&file.group),
        file.mode
    ));
    match &file.validate {
        Some(cmd) if cmd.contains("{path}") => {
            let cmd = cmd.replace("{path}", "\"$TMP\"");
            s.push_str(&format!(
                "if ! OUT=$({cmd} 2>&1); then rm -f \"$TMP\"; echo \"validation failed: $OUT\" >&2; exit 1; fi\n"
            ));
            s.push_str("mv -f \"$TMP\" \"$DEST\"\n");
        }
        Some(cmd) => {
            s.push_str("mv -f \"$TMP\" \"$DEST\"\n");
            s.push_str(&format!(
                "if ! OUT=$({cmd} 2>&1); then restore; echo \"validation failed, previous file restored: $OUT\" >&2; exit 1; fi\n"
            ));
        }
        None => s.push_str("mv -f \"$TMP\" \"$DEST\"\n"),
    }
    if file.path.starts_with("/etc/systemd/system/") {
        s.push_str("systemctl daemon-reload\n");
    }
    s
}

/// Puts `path` back as it was before this run changed it: from the run's backup, or removed
/// when the run created it. For `write_file` and `remove`.
pub fn undo(path: &str, run_id: &str) -> String {
    format!(
        "DEST={}\nB=\"{STATE_DIR}/backups/{run}/$(printf %s \"$DEST\" | tr / %)\"\n\
         if [ -e \"$B\" ] || [ -L \"$B\" ]; then cp -a \"$B\" \"$DEST\"; else rm -f \"$DEST\"; fi\n",
        shell_word(path),
        run = shell_word(run_id)
    )
}

/// Removes a path, keeping a backup.
pub fn remove(path: &str, run_id: &str) -> String {
    let mut s = String::from("set -e\n");
    s.push_str(&format!("DEST={}\n", shell_word(path)));
    s.push_str(&backup(run_id));
    s.push_str("rm -f \"$DEST\"\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(validate: Option<&str>) -> FileSpec {
        FileSpec {
            path: "/etc/x y/conf".into(),
            content: "secret=1\n".into(),
            mode: crate::model::mode::Mode(0o600),
            owner: "root".into(),
            group: "root".into(),
            secret: crate::model::desired::Secrecy::Masked { shown: Vec::new() },
            validate: validate.map(str::to_string),
        }
    }

    #[test]
    fn content_travels_encoded_and_paths_are_quoted() {
        let s = write_file(&spec(None), "r1");
        assert!(!s.contains("secret=1"), "{s}");
        assert!(s.contains("DEST='/etc/x y/conf'"), "{s}");
        assert!(s.contains(&STANDARD.encode("secret=1\n")));
    }

    /// Runs the script for real against a temp dir (as the current user, no chown to root).
    fn run_local(script: &str) -> std::process::Output {
        std::process::Command::new("sh")
            .args(["-c", script])
            .output()
            .unwrap()
    }

    #[test]
    fn failed_validation_restores_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf");
        std::fs::write(&path, "old\n").unwrap();
        let me = String::from_utf8(
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let group = String::from_utf8(
            std::process::Command::new("id")
                .arg("-gn")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let mut file = spec(Some("false"));
        file.path = path.display().to_string();
        file.owner = me.trim().into();
        file.group = group.trim().into();
        let script =
            write_file(&file, "r1").replace("/var/lib/tandem", &dir.path().display().to_string());
        let out = run_local(&script);
        assert!(!out.status.success());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        file.validate = Some("test -s {path}".into());
        let script =
            write_file(&file, "r2").replace("/var/lib/tandem", &dir.path().display().to_string());
        let out = run_local(&script);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret=1\n");
        let backup = dir
            .path()
            .join("backups/r2")
            .join(file.path.replace('/', "%"));
        assert_eq!(std::fs::read_to_string(backup).unwrap(), "old\n");
    }
}
