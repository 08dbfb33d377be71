//! What the day-two commands run on servers: `manage`, `logs`, `releases` and `audit`. Pure:
//! each function builds a remote command or script from the host's variables and reads its
//! answer; the CLI connects, runs them and prints.

use crate::config::identifier::shell_word;
use crate::engine::vars::Vars;
use crate::resource::script::STATE_DIR;

/// The remote command line of `tandem manage -- ARGS`: manage.py in the current release, as the
/// project's user, with the env file's variables, the release's static root and its venv. It
/// travels in ssh's argv (stdin belongs to the operator's terminal), so it holds nothing
/// secret: the env file is read on the server. Becomes root first the way every tandem script
/// does.
pub fn manage_command(vars: &Vars, args: &[String]) -> String {
    let manage = format!(
        "cd {current} && {environment} && exec runuser -u {user} -- {current}/venv/bin/python manage.py{args}",
        current = shell_word(&vars.paths.current),
        environment = current_environment(vars),
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

/// What `tandem restart` restarts on an app server, without a release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Restartable {
    /// gunicorn: its idle unit starts on the live release, then the live one stops (no
    /// request waits for Django to start).
    Gunicorn,
    /// The background processes of `processes:` that run on the server (warm shutdown).
    Processes,
    /// nginx, reloaded after `nginx -t` (no connection dropped).
    Nginx,
}

/// Restarts `what` on the app server `vars` describes, waiting for gunicorn to be active
/// again; says one line per thing it restarted.
pub fn restart_script(vars: &Vars, what: &[Restartable]) -> String {
    let mut s = String::from("set -e\n");
    for item in what {
        match item {
            Restartable::Gunicorn => {
                s.push_str(&crate::resource::release::switch_live_script(vars, false))
            }
            Restartable::Processes => {
                let units = vars.processes.shell_units();
                if units.is_empty() {
                    s.push_str("echo 'no background process runs here'\n");
                } else {
                    s.push_str(&format!(
                        "systemctl restart {units}\necho \"restarted {}\"\n",
                        vars.processes
                            .here
                            .iter()
                            .map(|p| p.unit.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            Restartable::Nginx => {
                s.push_str(
                    "nginx -t -q || { echo 'nginx -t fails: nothing reloaded' >&2; exit 1; }\n",
                );
                s.push_str(&crate::model::platform::nginx_reload("reload"));
                s.push_str("echo 'reloaded nginx'\n");
            }
        }
    }
    s
}

/// A log `tandem logs` can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogSource {
    /// gunicorn's socket and service (journal), app servers.
    Gunicorn,
    /// nginx's access and error logs, app servers.
    Nginx,
    /// The background processes of `processes:` (journal), app servers.
    Processes,
    /// PostgreSQL's cluster log, the db server.
    Postgresql,
    /// The backup service's runs (journal), the backup server.
    Backup,
    /// etcd's journal: a database cluster's consensus (the witness; the db servers' also
    /// come with `postgresql`).
    Etcd,
}

impl LogSource {
    /// What a server of `role` has when no source is named.
    pub fn defaults(role: crate::config::Role) -> &'static [LogSource] {
        match role {
            crate::config::Role::App => {
                &[LogSource::Gunicorn, LogSource::Nginx, LogSource::Processes]
            }
            crate::config::Role::Db => &[LogSource::Postgresql],
            crate::config::Role::Backup => &[LogSource::Backup],
            crate::config::Role::Witness => &[LogSource::Etcd],
        }
    }

    fn on(self, role: crate::config::Role) -> bool {
        Self::defaults(role).contains(&self)
            || (self == LogSource::Etcd && role == crate::config::Role::Db)
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
                // The bridge serves every other release (the units take turns): its requests
                // are the site's too.
                journal_units.push(vars.units.bridge.clone());
            }
            LogSource::Nginx => {
                journal_units.push("nginx.service".to_string());
                files.push(("nginx", "/var/log/nginx/access.log".to_string()));
                files.push(("nginx", "/var/log/nginx/error.log".to_string()));
            }
            LogSource::Backup => journal_units.push(vars.backup.service.clone()),
            LogSource::Etcd if vars.cluster.enabled => {
                journal_units.push("etcd.service".to_string())
            }
            LogSource::Etcd => {}
            LogSource::Processes => {
                journal_units.extend(vars.processes.here.iter().map(|p| p.unit.clone()))
            }
            // Debian's cluster log; the newest, should an upgrade have left an older one.
            LogSource::Postgresql => {
                files.push((
                    "postgresql",
                    "$(ls -1t /var/log/postgresql/postgresql-*-main.log 2>/dev/null | head -n 1)"
                        .to_string(),
                ));
                // In a cluster Patroni runs PostgreSQL (its output is Patroni's journal) and
                // decides with etcd who leads: their journals are the database's story. The
                // unit is named after the PostgreSQL version, which logs does not discover:
                // journalctl matches the pattern itself.
                if vars.cluster.enabled {
                    journal_units.push("patroni@*".to_string());
                    journal_units.push("etcd.service".to_string());
                }
            }
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

/// A root script that runs `python` in `manage.py shell` on an app server, as the project's
/// user in the current release with the env file's variables. The code travels in a heredoc
/// (a file, so Django runs it whole rather than as an interactive session).
pub fn manage_shell_script(vars: &Vars, python: &str) -> String {
    format!(
        "set -e\ncd {current}\n{environment}\n\
         runuser -u {user} -- {current}/venv/bin/python manage.py shell <<'TANDEM_PY'\n{python}TANDEM_PY\n",
        current = shell_word(&vars.paths.current),
        environment = current_environment(vars),
        user = shell_word(&vars.user),
    )
}

/// The env file's variables and the current release's static root, for manage.py there.
fn current_environment(vars: &Vars) -> String {
    crate::resource::script::django_environment(
        &shell_word(&vars.paths.env_file),
        &shell_word(&vars.static_root_in(&vars.paths.current)),
    )
}

/// What `tandem tenant` does.
pub enum TenantAction<'a> {
    List,
    Add {
        name: &'a str,
        domain: &'a str,
        schema: &'a str,
    },
}

/// Python for `manage.py shell` that lists the tenants or adds one the way the project's own
/// models require (django-tenants: a tenant and its primary domain; django-tenant-schemas: a
/// tenant with `domain_url`), its schema created and migrated. Answers in marked lines:
/// `TANDEM_TENANT {json}`, `TANDEM_ADDED schema`, `TANDEM_ERROR why` (and exit status 3).
pub fn tenant_python(action: &TenantAction) -> String {
    let literal = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let mut py = String::from(
        "import json, sys\n\
         try:\n    from django_tenants.utils import get_tenant_model, get_tenant_domain_model\n    \
         Tenant, Domain = get_tenant_model(), get_tenant_domain_model()\n\
         except ImportError:\n    from tenant_schemas.utils import get_tenant_model\n    \
         Tenant, Domain = get_tenant_model(), None\n\
         def domains_of(t):\n    \
         return [d.domain for d in Domain.objects.filter(tenant=t)] if Domain else [t.domain_url]\n\
         def fail(why):\n    print('TANDEM_ERROR ' + why)\n    sys.exit(3)\n",
    );
    match action {
        TenantAction::List => py.push_str(
            "for t in Tenant.objects.order_by('schema_name'):\n    \
             print('TANDEM_TENANT ' + json.dumps({'schema': t.schema_name, 'name': str(getattr(t, 'name', '')), 'domains': domains_of(t)}))\n",
        ),
        TenantAction::Add {
            name,
            domain,
            schema,
        } => py.push_str(&format!(
            "name, domain, schema = {}, {}, {}\n\
             if Tenant.objects.filter(schema_name=schema).exists():\n    \
             fail('a tenant with schema ' + schema + ' exists already')\n\
             if Domain is not None and Domain.objects.filter(domain=domain).exists():\n    \
             fail('the domain ' + domain + ' belongs to a tenant already')\n\
             fields = {{f.name for f in Tenant._meta.get_fields()}}\n\
             extra = {{'name': name}} if 'name' in fields else {{}}\n\
             if Domain is None:\n    extra['domain_url'] = domain\n\
             t = Tenant(schema_name=schema, **extra)\n\
             t.save()\n\
             if not getattr(t, 'auto_create_schema', True):\n    t.create_schema(check_if_exists=True)\n\
             if Domain is not None:\n    Domain.objects.create(domain=domain, tenant=t, is_primary=True)\n\
             print('TANDEM_ADDED ' + schema)\n",
            literal(name),
            literal(domain),
            literal(schema)
        )),
    }
    py
}

/// A tenant as `tandem tenant list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Tenant {
    pub schema: String,
    pub name: String,
    pub domains: Vec<String>,
}

/// The tenants in `tenant_python(List)`'s output.
pub fn parse_tenants(text: &str) -> Vec<Tenant> {
    text.lines()
        .filter_map(|l| l.strip_prefix("TANDEM_TENANT "))
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect()
}

/// The schema for a new tenant: `--schema` when given, else made from its name (`Blue Shop`
/// -> `blue_shop`). Refused: names PostgreSQL or django-tenants keep for themselves.
pub fn tenant_schema(name: &str, schema: Option<&str>) -> Result<String, String> {
    let schema = match schema {
        Some(s) => s.to_string(),
        None => {
            let mut s: String = name
                .trim()
                .to_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            while s.contains("__") {
                s = s.replace("__", "_");
            }
            let s = s.trim_matches('_').to_string();
            if s.starts_with(|c: char| c.is_ascii_digit()) {
                format!("t_{s}")
            } else {
                s
            }
        }
    };
    if !crate::config::identifier::is_safe_name(&schema) {
        return Err(format!(
            "`{schema}` is not a schema name tandem accepts: lowercase letters, digits and `_`, \
             starting with a letter, at most 31 characters (pass --schema)"
        ));
    }
    if schema == "public" || schema == "information_schema" || schema.starts_with("pg_") {
        return Err(format!(
            "`{schema}` is PostgreSQL's own schema: choose another (--schema)"
        ));
    }
    Ok(schema)
}

/// Whether a tenant may use `domain`: one of `domains`, or one label under a wildcard of them
/// (`blue.example.com` under `*.example.com`), so nginx and ALLOWED_HOSTS already answer it.
pub fn domain_is_served(domain: &str, domains: &[String]) -> bool {
    // Lowercase, as django-tenants looks hosts up.
    if !crate::config::identifier::is_domain(domain)
        || domain.starts_with("*.")
        || domain != domain.to_ascii_lowercase()
    {
        return false;
    }
    domains.iter().any(|d| match d.strip_prefix("*.") {
        Some(apex) => domain
            .strip_suffix(apex)
            .and_then(|label| label.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => d == domain,
    })
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
        let config = crate::config::testing::shop(dir.path());
        Vars::for_paths(&config, &config.servers[1])
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
            app.contains(
                "-u gunicorn-shop.socket -u gunicorn-shop.service -u gunicorn-shop-bridge.service -u nginx.service"
            ),
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
        // A cluster member's database story is also Patroni's and etcd's journal.
        let dir = tempfile::tempdir().unwrap();
        let cluster =
            crate::config::testing::shop_with(dir.path(), crate::config::testing::CLUSTER, "");
        let member = Vars::for_paths(&cluster, &cluster.servers[0]);
        let db = logs_script(&member, Role::Db, &all, &range);
        assert!(
            db.contains("-u 'patroni@*' -u etcd.service") && db.contains("postgresql-*-main.log"),
            "{db}"
        );
        // The witness has etcd's journal, by default and by name; outside a cluster, nothing.
        let witness = Vars::for_paths(&cluster, &cluster.servers[3]);
        let etcd = logs_script(
            &witness,
            Role::Witness,
            LogSource::defaults(Role::Witness),
            &range,
        );
        assert!(etcd.contains(" -u etcd.service 2>&1"), "{etcd}");
        assert!(!logs_script(&vars(), Role::Db, &[LogSource::Etcd], &range).contains("etcd"));
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
    fn tenant_schemas_and_domains() {
        assert_eq!(tenant_schema("Blue Shop", None).unwrap(), "blue_shop");
        assert_eq!(tenant_schema(" 3M -- Corp ", None).unwrap(), "t_3m_corp");
        assert_eq!(tenant_schema("x", Some("acme")).unwrap(), "acme");
        for bad in ["public", "pg_catalog", "Acme", "a-b", ""] {
            assert!(tenant_schema("x", Some(bad)).is_err(), "{bad}");
        }
        assert!(tenant_schema("Public", None).is_err());
        let domains = vec![
            "crowdminder.example".to_string(),
            "*.crowdminder.example".to_string(),
        ];
        assert!(domain_is_served("blue.crowdminder.example", &domains));
        assert!(domain_is_served("crowdminder.example", &domains));
        for bad in [
            "a.b.crowdminder.example",
            "evil.example",
            "xcrowdminder.example",
            "*.crowdminder.example",
            ".crowdminder.example",
            "Blue.crowdminder.example",
        ] {
            assert!(!domain_is_served(bad, &domains), "{bad}");
        }
    }

    #[test]
    fn tenant_python_takes_its_values_as_literals() {
        let py = tenant_python(&TenantAction::Add {
            name: "O'Brien \"Ltd\"\nTANDEM_PY",
            domain: "obrien.crowdminder.example",
            schema: "obrien",
        });
        assert!(
            py.contains(r#"name, domain, schema = "O'Brien \"Ltd\"\nTANDEM_PY", "obrien.crowdminder.example", "obrien""#),
            "{py}"
        );
        assert!(
            !py.lines().any(|l| l == "TANDEM_PY"),
            "the heredoc would end early"
        );
        // It is Python that compiles.
        let check = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys; compile(sys.stdin.read(), 'tenant', 'exec')",
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(py.as_bytes())?;
                c.wait()
            })
            .unwrap();
        assert!(check.success(), "{py}");
        let listed = parse_tenants(
            "noise\nTANDEM_TENANT {\"schema\": \"acme\", \"name\": \"Acme\", \"domains\": [\"acme.x\"]}\n",
        );
        assert_eq!(listed[0].schema, "acme");
        assert_eq!(listed[0].domains, ["acme.x"]);
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
