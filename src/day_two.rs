//! What the day-two commands run on servers: `manage`, `logs`, `releases` and `audit`. Pure:
//! each function builds a remote command or script from the host's variables and reads its
//! answer; the CLI connects, runs them and prints.

use crate::identifier::shell_word;
use crate::script::STATE_DIR;
use crate::vars::Vars;

/// The remote command line of `tandem manage -- ARGS`: manage.py in the current release, as the
/// project's user, with the env file's variables and the release's venv. It travels in ssh's
/// argv (stdin belongs to the operator's terminal), so it holds nothing secret: the env file is
/// read on the server. Becomes root first the way every tandem script does.
pub fn manage_command(vars: &Vars, args: &[String]) -> String {
    let manage = format!(
        "cd {current} && set -a && . {env} && set +a && exec runuser -u {user} -- {current}/venv/bin/python manage.py{args}",
        current = shell_word(&vars.paths.current),
        env = shell_word(&vars.paths.env_file),
        user = shell_word(&vars.user),
        args = args
            .iter()
            .map(|a| format!(" {}", shell_word(a)))
            .collect::<String>(),
    );
    format!(
        "if [ \"$(id -u)\" -eq 0 ]; then exec sh -c {m}; else exec sudo -n sh -c {m}; fi",
        m = shell_word(&manage)
    )
}

/// A log `tandem logs` can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogSource {
    /// gunicorn's socket and service (journal), app servers.
    Gunicorn,
    /// nginx's access and error logs, app servers.
    Nginx,
    /// PostgreSQL's cluster log, the db server.
    Postgresql,
}

impl LogSource {
    /// What a server of `role` has when no source is named.
    pub fn defaults(role: crate::config::Role) -> &'static [LogSource] {
        match role {
            crate::config::Role::App => &[LogSource::Gunicorn, LogSource::Nginx],
            crate::config::Role::Db => &[LogSource::Postgresql],
        }
    }

    fn on(self, role: crate::config::Role) -> bool {
        Self::defaults(role).contains(&self)
    }
}

/// How much log `tandem logs` shows.
#[derive(Clone, Debug)]
pub struct LogRange {
    /// `journalctl --since` (e.g. `1h`, `2026-11-29 10:00`); journal sources only.
    pub since: Option<String>,
    /// Lines per source before following.
    pub lines: u32,
    pub follow: bool,
}

/// The script that prints `sources` of a server (those it has), one line per log line, each
/// prefixed with its source; with `follow`, it keeps printing until it is stopped.
pub fn logs_script(
    vars: &Vars,
    role: crate::config::Role,
    sources: &[LogSource],
    range: &LogRange,
) -> String {
    let mut journal_units = Vec::new();
    let mut files = Vec::new();
    for source in sources.iter().filter(|s| s.on(role)) {
        match source {
            LogSource::Gunicorn => {
                journal_units.push(vars.units.socket.clone());
                journal_units.push(vars.units.service.clone());
            }
            LogSource::Nginx => {
                journal_units.push("nginx.service".to_string());
                files.push(("nginx", "/var/log/nginx/access.log".to_string()));
                files.push(("nginx", "/var/log/nginx/error.log".to_string()));
            }
            // Debian's cluster log; the newest, should an upgrade have left an older one.
            LogSource::Postgresql => files.push((
                "postgresql",
                "$(ls -1t /var/log/postgresql/postgresql-*-main.log 2>/dev/null | head -n 1)"
                    .to_string(),
            )),
        }
    }
    let follow = if range.follow { " -f" } else { "" };
    let mut parts = Vec::new();
    if !journal_units.is_empty() {
        let units: String = journal_units
            .iter()
            .map(|u| format!(" -u {}", shell_word(u)))
            .collect();
        let since = range
            .since
            .as_deref()
            .map(|s| format!(" --since {}", shell_word(&journal_since(s))))
            .unwrap_or_default();
        parts.push(format!(
            "journalctl --no-pager -o short-iso -n {n}{since}{units}{follow} 2>&1 | sed -u 's/^/journal | /'",
            n = range.lines
        ));
    }
    for (label, path) in files {
        let tail = if range.follow { "tail -F" } else { "tail" };
        // A fixed path is quoted; the PostgreSQL one is a command substitution on purpose.
        let (word, base) = if path.starts_with("$(") {
            (format!("\"{path}\""), "main.log")
        } else {
            (shell_word(&path), path.rsplit('/').next().unwrap_or(""))
        };
        parts.push(format!(
            "{tail} -q -n {n} -- {word} 2>/dev/null | sed -u 's|^|{label} {base} \\| |'",
            n = range.lines,
        ));
    }
    if parts.is_empty() {
        return "true\n".to_string();
    }
    // Every source at once (they run until stopped when following), then wait for all. The
    // lines go to stderr, which tandem reads line by line as they come.
    let mut script = String::from("exec 1>&2\n");
    for part in parts {
        script.push_str(&format!("( {part} ) &\n"));
    }
    script.push_str("wait\n");
    script
}

/// journalctl reads `1h` as nothing; `tandem logs --since 1h` means an hour ago.
fn journal_since(since: &str) -> String {
    let digits = since.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &since[digits.len()..];
    let word = match unit {
        "s" => "seconds",
        "m" | "min" => "minutes",
        "h" => "hours",
        "d" => "days",
        _ => return since.to_string(),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return since.to_string();
    }
    format!("-{digits} {word}")
}

/// One release on an app server, as `tandem releases` lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReleaseEntry {
    pub id: String,
    /// The code hash recorded when the release went live; empty for one that never did.
    pub hash: String,
    /// Who shipped it (`user@machine`), when it was recorded.
    pub by: String,
    pub current: bool,
}

/// Lists the releases of an app server: `release=ID<TAB>HASH<TAB>BY`, and `current=ID`.
pub fn releases_script(vars: &Vars) -> String {
    format!(
        "cd {root} 2>/dev/null || exit 0\n\
         echo \"current=$(readlink current 2>/dev/null | sed 's|.*/||')\"\n\
         for d in releases/*/; do\n\
           [ -d \"$d\" ] || continue\n\
           id=$(basename \"$d\")\n\
           printf 'release=%s\\t%s\\t%s\\n' \"$id\" \"$(head -n 1 \"$d.tandem-release\" 2>/dev/null)\" \"$(head -n 1 \"$d.tandem-deployed-by\" 2>/dev/null)\"\n\
         done\n",
        root = shell_word(&vars.paths.root)
    )
}

/// Reads `releases_script`'s answer, oldest first.
pub fn parse_releases(text: &str) -> Vec<ReleaseEntry> {
    let current = text
        .lines()
        .find_map(|l| l.strip_prefix("current="))
        .unwrap_or("");
    let mut entries: Vec<ReleaseEntry> = text
        .lines()
        .filter_map(|l| l.strip_prefix("release="))
        .map(|l| {
            let mut fields = l.split('\t');
            let id = fields.next().unwrap_or("").to_string();
            ReleaseEntry {
                current: !id.is_empty() && id == current,
                hash: fields.next().unwrap_or("").trim().to_string(),
                by: fields.next().unwrap_or("").trim().to_string(),
                id,
            }
        })
        .filter(|e| !e.id.is_empty())
        .collect();
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    entries
}

/// The last `lines` lines of a server's audit log.
pub fn audit_script(lines: u32) -> String {
    format!("tail -n {lines} {STATE_DIR}/audit.log 2>/dev/null || true\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;

    fn vars() -> Vars {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "manage.py",
            "requirements.txt",
            "shop/settings.py",
            "shop/wsgi.py",
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        let config = crate::config::parse(
            &dir.path().join("tandem.yml"),
            "project: shop
servers:
  - {name: db, role: db, ssh: db, fqdn: db.example.com, internal_ip: 10.0.0.3}
  - {name: app1, role: app, ssh: app1, fqdn: app1.example.com, internal_ip: 10.0.0.2}
domains: [shop.example.com]
database: {name: shop, role: shop, password: {env: X}}
ssh: {authorized_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHYMxxG3vqHCA+eug0ptUklTD5djvx5I6fEUaBbLhMuQ x\"]}
django: {source: ., wsgi_module: shop.wsgi, settings_module: shop.settings}
",
        )
        .unwrap()
        .config;
        let mut vars = Vars::for_paths(&config, &config.servers[1]);
        vars.pg.version = "15".into();
        vars
    }

    #[test]
    fn manage_args_arrive_as_given() {
        // A server in a directory: the release, the env file, and `runuser`/`sudo` that show
        // what they were given.
        let server = tempfile::tempdir().unwrap();
        let bin = server.path().join("bin");
        std::fs::create_dir_all(server.path().join("current")).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(server.path().join("env"), "FROM_ENV=yes\n").unwrap();
        for (name, body) in [
            (
                "runuser",
                "printf '[%s]' \"$@\"; printf '{%s}' \"$FROM_ENV\"",
            ),
            ("sudo", "shift; exec \"$@\""),
        ] {
            let path = bin.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let mut vars = vars();
        vars.paths.current = server.path().join("current").display().to_string();
        vars.paths.env_file = server.path().join("env").display().to_string();
        let args: Vec<String> = [
            "createsuperuser",
            "--username",
            "a b'c",
            "$(id)",
            "--noinput",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let command = manage_command(&vars, &args);
        // As ssh's remote login shell runs it.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap();
        let seen = String::from_utf8_lossy(&out.stdout);
        let python = format!("{}/venv/bin/python", vars.paths.current);
        assert_eq!(
            seen,
            format!(
                "[-u][shop][--][{python}][manage.py][createsuperuser][--username][a b'c][$(id)][--noinput]{{yes}}"
            ),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn logs_ask_each_server_only_for_what_it_has() {
        let range = LogRange {
            since: Some("1h".into()),
            lines: 20,
            follow: false,
        };
        let all = [LogSource::Gunicorn, LogSource::Nginx, LogSource::Postgresql];
        let app = logs_script(&vars(), Role::App, &all, &range);
        assert!(
            app.contains("-u gunicorn-shop.socket -u gunicorn-shop.service -u nginx.service"),
            "{app}"
        );
        assert!(app.contains("--since '-1 hours'"), "{app}");
        assert!(app.contains("/var/log/nginx/access.log") && !app.contains("postgresql-15"));
        let db = logs_script(&vars(), Role::Db, &all, &range);
        assert!(
            db.contains("tail -q -n 20 -- \"$(ls -1t /var/log/postgresql/postgresql-*-main.log"),
            "{db}"
        );
        assert!(!db.contains("journalctl"), "{db}");
        let follow = logs_script(
            &vars(),
            Role::App,
            &[LogSource::Nginx],
            &LogRange {
                follow: true,
                ..range
            },
        );
        assert!(
            follow.contains("tail -F") && follow.contains(" -f 2>&1"),
            "{follow}"
        );
        for script in [app, db, follow] {
            let check = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .status()
                .unwrap();
            assert!(check.success(), "{script}");
        }
    }

    #[test]
    fn since_reads_like_people_write_it() {
        assert_eq!(journal_since("1h"), "-1 hours");
        assert_eq!(journal_since("30m"), "-30 minutes");
        assert_eq!(journal_since("2d"), "-2 days");
        assert_eq!(journal_since("2026-11-29 10:00"), "2026-11-29 10:00");
        assert_eq!(journal_since("yesterday"), "yesterday");
    }

    #[test]
    fn releases_are_listed_oldest_first_with_the_current_one_marked() {
        let listed = parse_releases(
            "current=20261129T100000Z-bbb\n\
             release=20261129T100000Z-bbb\tbbbbbb\tops@laptop\n\
             release=20261128T090000Z-aaa\taaaaaa\tci@runner\n\
             release=20261129T110000Z-ccc\t\t\n",
        );
        let ids: Vec<&str> = listed.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "20261128T090000Z-aaa",
                "20261129T100000Z-bbb",
                "20261129T110000Z-ccc"
            ]
        );
        assert!(listed[1].current && !listed[0].current && !listed[2].current);
        assert_eq!(listed[0].by, "ci@runner");
        assert_eq!(
            listed[2].hash, "",
            "a release that never went live has no hash"
        );
    }
}
