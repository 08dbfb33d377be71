//! `Verification`: proof that the deployment works and is closed. Each check passes or fails
//! with what was seen and, on failure, what to do. Server-side checks reuse the facts of the
//! plan's probe and add one script per app server; the rest runs from this machine.

use std::fmt;

use futures::future::join_all;
use serde::Serialize;

use crate::config::identifier::shell_word;
use crate::config::{Config, Role, Server};
use crate::engine::transport::Transport;
use crate::engine::vars::Vars;
use crate::engine::{Engine, Planned};
use crate::model::desired::Op;
use crate::model::facts::{PG, UFW};
use crate::model::ufw::UfwState;

mod here;
pub use here::from_here;

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub server: String,
    pub name: String,
    pub ok: bool,
    /// What was seen.
    pub detail: String,
    /// What to do when it failed.
    pub hint: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    pub checks: Vec<Check>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    fn add(&mut self, server: &str, name: &str, ok: bool, detail: impl Into<String>, hint: &str) {
        self.checks.push(Check {
            server: server.to_string(),
            name: name.to_string(),
            ok,
            detail: detail.into(),
            hint: (!ok).then(|| hint.to_string()),
        });
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(
                f,
                "{} {}: {} ({})",
                if c.ok { "PASS" } else { "FAIL" },
                c.server,
                c.name,
                c.detail
            )?;
            if let Some(h) = &c.hint {
                writeln!(f, "     fix: {h}")?;
            }
        }
        let failed = self.checks.iter().filter(|c| !c.ok).count();
        if failed == 0 {
            write!(f, "verify: all {} checks passed", self.checks.len())
        } else {
            write!(f, "verify: {failed} of {} checks FAILED", self.checks.len())
        }
    }
}

/// What verify's own scripts printed on the servers: each app server's checks and, with
/// backups, the db server's view of the repository. They need no plan, so they run while the
/// servers are probed.
pub struct ServerAnswers {
    /// Per app server (its name), the script's output or why it could not run.
    apps: Vec<(String, String)>,
    backup: Option<String>,
}

/// Runs verify's scripts on the servers (owning clones of the sessions, so it can run beside
/// the probe).
pub fn server_scripts(engine: &Engine) -> impl Future<Output = ServerAnswers> + use<> {
    let config = &engine.config;
    let text = |out: anyhow::Result<crate::engine::transport::Output>| match out {
        Ok(o) => o.stdout_text(),
        Err(e) => format!("error={e:#}"),
    };
    // From each app server: the app's own credentials, over the internal network. The paths
    // and unit names are the ones the playbooks used, from the same `Vars`.
    let apps: Vec<_> = engine
        .servers
        .iter()
        .zip(&engine.hosts)
        .filter(|(s, _)| s.role == Role::App)
        .map(|(server, ssh)| {
            let script = app_script(config, &Vars::for_paths(config, server));
            (server.name.clone(), ssh.clone(), script)
        })
        .collect();
    // From the db server (with --only, it may not take part): the repository answers, the
    // newest backup is recent and WAL archiving does not fail.
    let backup = config.backup.as_ref().and_then(|_| {
        let i = engine.servers.iter().position(|s| s.role == Role::Db)?;
        let stanza = Vars::for_paths(config, &engine.servers[i]).backup.stanza;
        Some((engine.hosts[i].clone(), backup_script(&stanza)))
    });
    async move {
        let apps = join_all(
            apps.into_iter()
                .map(|(name, ssh, script)| async move { (name, text(ssh.run(&script).await)) }),
        );
        let backup = async {
            match backup {
                Some((ssh, script)) => Some(text(ssh.run(&script).await)),
                None => None,
            }
        };
        let (apps, backup) = tokio::join!(apps, backup);
        ServerAnswers { apps, backup }
    }
}

/// Runs every check. `planned` is a plan computed just now (its probe is the evidence);
/// `here` holds the checks from this machine (`from_here`) and `answers` what
/// `server_scripts` printed, both run while the servers were probed.
pub fn verify(
    engine: &Engine,
    planned: &Planned,
    here: Verification,
    answers: ServerAnswers,
) -> Verification {
    let config = &engine.config;
    let mut v = Verification::default();
    let db = config.db_server();
    // With --only, the db server may not take part: its own checks are skipped then.
    let db_index = engine.servers.iter().position(|s| s.role == Role::Db);

    for (name, text) in &answers.apps {
        if let Some(server) = engine.servers.iter().find(|s| &s.name == name) {
            app_checks(&mut v, config, server, text);
        }
    }

    // On the db server: pg_hba holds tandem's lines only; ufw admits only the app servers.
    if let Some(db_index) = db_index {
        let facts = &planned.facts[db_index];
        let desired = &planned.desired[db_index];
        hba_check(
            &mut v,
            db,
            desired,
            &facts
                .results
                .get(&hba_task(desired).map_or(String::new(), |t| desired.tasks[t].probe.clone()))
                .map(|r| r.stdout.clone()),
        );
        let pg = facts.get(PG);
        v.add(
            &db.name,
            "PostgreSQL answers",
            pg.ok(),
            if pg.ok() {
                "psql as postgres works"
            } else {
                "psql as postgres failed"
            },
            "start it: systemctl start postgresql; see journalctl -u postgresql",
        );
        if pg.ok() {
            let overridden = crate::resource::postgres_facts::overridden_settings(desired, facts);
            v.add(
                &db.name,
                "PostgreSQL takes tandem's settings from its conf.d",
                overridden.is_empty(),
                if overridden.is_empty() {
                    "no later file overrides them".to_string()
                } else {
                    overridden
                        .iter()
                        .map(|s| s.origin())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                "tandem apply takes it out there (ALTER SYSTEM RESET, or the line commented out); a value of your own belongs in tandem.yml's database.settings",
            );
        }
    }

    if let (Some(backup), Some(text)) = (&config.backup, &answers.backup) {
        let stanza = Vars::for_paths(config, db).backup.stanza;
        backup_checks(&mut v, db, backup, &stanza, text);
    }

    // The timers that keep things going without tandem: the ACME issuer's renewal (or
    // nothing renews the certificate) and the backup server's backups.
    for (i, server) in engine.servers.iter().enumerate() {
        let desired = &planned.desired[i];
        let timers = [
            (
                crate::tls::vars::TlsVars::of(config, server).timer,
                "certificate renewal timer on",
                "run tandem apply: it enables tandem-acme-<project>.timer on the first app server",
            ),
            (
                Vars::for_paths(config, server).backup.timer,
                "backup timer on",
                "run tandem apply: it enables tandem-backup-<project>.timer on the backup server",
            ),
        ];
        for (wanted, name, hint) in timers {
            let timer = desired.tasks.iter().position(
                |t| matches!(&t.op, Op::Service { name, enabled: true, .. } if *name == wanted),
            );
            if let Some(t) = timer {
                let answer = planned.facts[i].get(&desired.tasks[t].probe).stdout;
                let states: Vec<&str> = answer.split_whitespace().collect();
                v.add(
                    &server.name,
                    name,
                    states == ["enabled", "active"],
                    states.join(" "),
                    hint,
                );
            }
        }
    }

    for (i, server) in engine.servers.iter().enumerate() {
        let ufw = UfwState::parse(
            planned.facts[i].get(UFW).status,
            &planned.facts[i].get(UFW).stdout,
        );
        ufw_checks(&mut v, config, server, &planned.desired[i], &ufw);
    }

    // From this machine: the caller ran them while the servers were probed.
    v.checks.extend(here.checks);

    // Managed files: each as tandem would write it now (a hand edit is drift, even when the
    // service still works).
    for (host, server) in planned.plan.hosts.iter().zip(&engine.servers) {
        let drifted: Vec<&str> = host
            .changes
            .iter()
            .filter_map(|c| c.file.as_deref())
            .collect();
        v.add(
            &server.name,
            "managed files as tandem writes them",
            drifted.is_empty(),
            if drifted.is_empty() {
                "no difference".to_string()
            } else {
                format!("differ or missing: {}", drifted.join(", "))
            },
            "`tandem plan` shows the difference; `tandem apply` writes them back (put lasting \
             changes in tandem.yml or --overrides templates)",
        );
    }

    // Releases: the one tandem deployed is current.
    for (host, server) in planned.plan.hosts.iter().zip(&engine.servers) {
        if let Some(state) = &host.release {
            let ok = state.current_hash.as_deref() == Some(planned.code_hash.as_str());
            v.add(
                &server.name,
                "current release is tandem's",
                ok,
                format!("current {}", state.current.as_deref().unwrap_or("none")),
                "run `tandem deploy` (or apply) to ship the code in django.source",
            );
        }
    }
    v
}

/// On the db server: pgBackRest's view of the repository (over its SSH link, as archiving
/// uses it), and PostgreSQL's archiver statistics.
fn backup_script(stanza: &str) -> String {
    let sql = "select coalesce(extract(epoch from last_archived_time)::bigint, 0) || ' ' || \
               coalesce(extract(epoch from last_failed_time)::bigint, 0) || ' ' || \
               coalesce(last_failed_wal, '-') from pg_stat_archiver";
    format!(
        "( {} )\necho @archiver\n{}\n",
        crate::backup::pgbackrest::info_script(stanza).replace('\n', "\n  "),
        crate::postgres::as_postgres(&format!("-Atq -c {}", shell_word(sql)))
    )
}

/// The three backup checks from `backup_script`'s output.
fn backup_checks(
    v: &mut Verification,
    db: &Server,
    backup: &crate::config::Backup,
    stanza: &str,
    out: &str,
) {
    use crate::backup::pgbackrest::{human_age, parse_info_output};
    let (info_part, archiver) = out.split_once("@archiver\n").unwrap_or((out, ""));
    let (now, info) = parse_info_output(info_part, stanza);
    let repository = &backup.repository;
    let unreachable_hint = format!(
        "from {db}: sudo -u postgres pgbackrest --stanza={stanza} info says why; is {repository} up, its sshd reachable from {db} (firewall?), and the key in place (tandem apply)?",
        db = db.name
    );
    match &info {
        Ok(info) => v.add(
            &db.name,
            "backup repository reachable",
            info.code == crate::backup::pgbackrest::STATUS_OK
                || info.code == crate::backup::pgbackrest::STATUS_NO_BACKUP,
            format!("{repository}: {}", info.message),
            &unreachable_hint,
        ),
        Err(e) => v.add(
            &db.name,
            "backup repository reachable",
            false,
            format!("{repository}: {e}"),
            &unreachable_hint,
        ),
    }
    let max_age = backup.schedule.max_age_seconds();
    let latest = info.as_ref().ok().and_then(|i| i.latest());
    v.add(
        &db.name,
        "recent backup",
        latest.is_some_and(|b| now - b.stop <= max_age),
        match latest {
            Some(b) => format!("newest: {} backup {} ago", b.kind, human_age(now - b.stop)),
            None if info.is_err() => "unknown: the repository did not answer".into(),
            None => "no backup in the repository".into(),
        },
        &format!(
            "the {} schedule allows {}; see `tandem logs --server {repository} backup`, take one with `tandem backup`",
            backup.schedule.on_calendar(),
            human_age(max_age)
        ),
    );
    let numbers: Vec<&str> = archiver.split_whitespace().collect();
    let (archived, failed) = match numbers.as_slice() {
        [a, f, _] => (a.parse::<i64>().unwrap_or(0), f.parse::<i64>().unwrap_or(0)),
        _ => (0, -1),
    };
    v.add(
        &db.name,
        "WAL archiving works",
        failed >= 0 && failed <= archived,
        match numbers.as_slice() {
            [_, "0", _] => "no archive failure".to_string(),
            [_, _, wal] if failed > archived => format!("the last attempt failed ({wal})"),
            [_, _, _] => "failures before the last success only".to_string(),
            _ => format!("pg_stat_archiver unreadable: {}", archiver.trim()),
        },
        &format!(
            "PostgreSQL's log on {} says why archive-push fails (`tandem logs --server {} postgresql`); until it works, WAL piles up in pg_wal",
            db.name, db.name
        ),
    );
}

fn hba_task(desired: &crate::model::desired::Desired) -> Option<usize> {
    desired
        .tasks
        .iter()
        .position(|t| matches!(t.op, Op::PgHbaBlock { .. }))
}

fn hba_check(
    v: &mut Verification,
    db: &Server,
    desired: &crate::model::desired::Desired,
    file: &Option<String>,
) {
    let Some(i) = hba_task(desired) else { return };
    let Op::PgHbaBlock { block, .. } = &desired.tasks[i].op else {
        return;
    };
    let Some(file) = file else {
        v.add(
            &db.name,
            "pg_hba.conf holds only the expected lines",
            false,
            "pg_hba.conf not readable",
            "run tandem apply",
        );
        return;
    };
    let has_block = file.contains(block.as_str());
    // Outside tandem's block, only local connections may be admitted.
    let wider = crate::postgres::foreign_lines(file, block);
    let ok = has_block && wider.is_empty();
    let detail = if !has_block {
        "tandem's block is missing or edited".to_string()
    } else if !wider.is_empty() {
        format!("other remote lines: {}", wider.join(" | "))
    } else {
        "tandem's block, local lines only".to_string()
    };
    v.add(&db.name, "pg_hba.conf holds only the expected lines", ok, detail,
        "run tandem apply: it restores the block and disables other lines admitting remote addresses; list deliberate extra clients under `database.allow`");
}

fn ufw_checks(
    v: &mut Verification,
    config: &Config,
    server: &Server,
    desired: &crate::model::desired::Desired,
    ufw: &UfwState,
) {
    let wanted: Vec<_> = desired
        .tasks
        .iter()
        .filter_map(|t| match &t.op {
            Op::UfwAllow(r) => Some(r),
            _ => None,
        })
        .collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|r| !ufw.has(r))
        .map(|r| r.to_string())
        .collect();
    let ok = ufw.active && ufw.incoming == "deny" && missing.is_empty();
    let detail = if !ufw.active {
        "ufw is not active".to_string()
    } else if !missing.is_empty() {
        format!("missing: {}", missing.join("; "))
    } else {
        format!(
            "active, default {} incoming, tandem's {} rule(s) present",
            ufw.incoming,
            wanted.len()
        )
    };
    v.add(
        &server.name,
        "ufw active with tandem's rules",
        ok,
        detail,
        "run tandem apply",
    );
    if server.role == Role::Db {
        let wide: Vec<String> = ufw
            .opening_wider(crate::postgres::PORT, "tcp", &config.database_clients())
            .iter()
            .map(|r| r.describe())
            .collect();
        v.add(&server.name, "5432 open to the app servers only", wide.is_empty(),
            if wide.is_empty() { "no wider rule".to_string() } else { format!("wider: {}", wide.join("; ")) },
            "run tandem apply, which deletes it (`ufw delete ...` of the rule shown); list deliberate extra clients under `database.allow`");
    }
}

/// Runs on an app server as root: TCP and a real login with the app's credentials (read from
/// the env file by the app's own Python, never on a command line), Django's role settings,
/// nginx for each domain and for an unknown host, gunicorn units.
/// The app server's side of verify, run by the app's Python with its env file: the database
/// login (libpq through ctypes), nginx for each domain, the broker. `HOSTS`, `TANDEM_HTTPS`,
/// `TANDEM_RECORD` and `RECORD` are filled in.
const APP_PY: &str = include_str!("../../scripts/verify/app.py");

fn app_script(config: &Config, vars: &Vars) -> String {
    let hosts: Vec<String> = config
        .domains
        .iter()
        .map(|d| match d.strip_prefix("*.") {
            Some(apex) => format!("tandem-verify.{apex}"),
            None => d.clone(),
        })
        .collect();
    let multi_tenant = config.django.is_multi_tenant();
    let python = APP_PY
        .replace(
            "HOSTS",
            &serde_json::to_string(&hosts).unwrap_or_else(|_| "[]".into()),
        )
        .replace(
            "TANDEM_HTTPS",
            if config.tls.enabled() {
                "True"
            } else {
                "False"
            },
        )
        .replace("TANDEM_RECORD", if multi_tenant { "False" } else { "True" })
        .replace("RECORD", crate::resource::release::MIGRATIONS_RECORD);
    let django = migrations_check(config, vars);
    format!(
        // Units are read after the HTTP requests: with socket activation the service starts
        // on the first request.
        // Without a usable migrations record (tenants, a release from before records, a
        // changed migration file) Django itself checks: a Django start, the slow part. For
        // tenants it runs beside the other checks; its lines go through a file so that they
        // cannot land inside the JSON line.
        "R={current}\n\
         if cd \"$R\" 2>/dev/null; then\n\
         M=$(mktemp)\n\
         {beside}\
         OUT=$(set -a; . {env}; set +a; runuser -u {user} -- \"$R/venv/bin/python\" - <<'TANDEM_PY'\n{python}TANDEM_PY\n)\n\
         printf '%s\\n' \"$OUT\"\n\
         {after}\
         wait; cat \"$M\"; rm -f \"$M\"\n\
         else echo 'error=no current release'; fi\n\
         for u in {socket} {service} {processes}; do echo \"unit=$u $(systemctl is-active $u)\"; done\n\
         for u in {elsewhere}; do echo \"elsewhere=$u $(systemctl is-active $u)\"; done\n",
        beside = if multi_tenant {
            format!("( {django} ) >\"$M\" &\n")
        } else {
            String::new()
        },
        after = if multi_tenant {
            String::new()
        } else {
            format!("case \"$OUT\" in *'\"migrations\": '*) ;; *) ( {django} ) >\"$M\" ;; esac\n")
        },
        processes = vars.processes.shell_units(),
        elsewhere = vars
            .processes
            .elsewhere
            .iter()
            .map(|u| shell_word(u))
            .collect::<Vec<_>>()
            .join(" "),
        current = shell_word(&vars.paths.current),
        env = shell_word(&vars.paths.env_file),
        user = shell_word(&vars.user),
        socket = shell_word(&vars.units.socket),
        service = shell_word(&vars.units.service),
    )
}

/// Shell lines (inside the release directory) that print `migrations=ok|unapplied` and, for
/// multi-tenant projects, `public_tenant=yes|no`: one Django start either way.
fn migrations_check(config: &Config, vars: &Vars) -> String {
    let manage = format!(
        "(set -a; . {env}; set +a; runuser -u {user} -- \"$R/venv/bin/python\" manage.py",
        env = shell_word(&vars.paths.env_file),
        user = shell_word(&vars.user),
    );
    if config.django.is_multi_tenant() {
        format!("{manage} shell -c \"{TENANT_CHECKS}\" 2>/dev/null)\n")
    } else {
        format!(
            "if {manage} migrate --check >/dev/null 2>&1); then echo migrations=ok; else echo migrations=unapplied; fi\n"
        )
    }
}

/// `migrate_schemas --check` and the public tenant's row in one Django process (`manage.py
/// shell -c`, inside double quotes: no `"`, `$` or backquote here). `--check` ends the
/// command with exit status 1 when a schema has unapplied migrations.
const TENANT_CHECKS: &str = include_str!("../../scripts/verify/tenant_checks.py");

fn app_checks(v: &mut Verification, config: &Config, server: &Server, out: &str) {
    let name = &server.name;
    for line in out.lines().filter_map(|l| l.strip_prefix("unit=")) {
        let (unit, state) = line.split_once(' ').unwrap_or((line, ""));
        v.add(
            name,
            &format!("{unit} active"),
            state == "active",
            state,
            &format!("systemctl start {unit}; see journalctl -u {unit}"),
        );
    }
    // A singleton (beat) runs on one server only: anywhere else it would fire twice.
    for line in out.lines().filter_map(|l| l.strip_prefix("elsewhere=")) {
        let (unit, state) = line.split_once(' ').unwrap_or((line, ""));
        v.add(
            name,
            &format!("{unit} not running here"),
            state != "active" && state != "activating",
            state,
            &format!("run tandem apply: it stops and removes {unit} on servers it does not run on"),
        );
    }
    let json: serde_json::Value = out
        .lines()
        .find_map(|l| l.strip_prefix("json="))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    let released = !out.lines().any(|l| l.starts_with("error="));
    if released {
        // From the release's record (in the JSON) or, without one, from Django.
        let m = json["migrations"]
            .as_str()
            .or_else(|| out.lines().find_map(|l| l.strip_prefix("migrations=")))
            .unwrap_or("not checked");
        let migrate = if config.django.is_multi_tenant() {
            "migrate_schemas"
        } else {
            "migrate"
        };
        v.add(name, "no unapplied migrations", m == "ok", m,
            &format!("run `tandem deploy` (it runs manage.py {migrate}), or look at `manage.py showmigrations`"));
    }
    if config.django.is_multi_tenant() {
        let public = out
            .lines()
            .find_map(|l| l.strip_prefix("public_tenant="))
            .unwrap_or("unknown");
        v.add(name, "the public tenant exists", public == "yes", public,
            "django-tenants needs a tenant with schema_name 'public' and a domain row for the apex: run `tandem deploy`");
    }
    if let Some(err) = out.lines().find_map(|l| l.strip_prefix("error=")) {
        v.add(
            name,
            "app checks",
            false,
            err,
            "run tandem apply (or deploy) to ship a release",
        );
        return;
    }
    let tcp = json["tcp"].as_str().unwrap_or("no answer");
    v.add(name, "TCP to the database's internal IP:5432", tcp == "ok", tcp,
        "check that PostgreSQL runs and listens on the internal IP, and that ufw on the db server allows this app server");
    match json["settings"].as_array() {
        Some(s) => {
            let got: Vec<&str> = s.iter().filter_map(|x| x.as_str()).collect();
            v.add(
                name,
                "login with the app's credentials",
                true,
                format!("as {}", config.database.role),
                "",
            );
            v.add(name, "Django's role settings", got == ["UTF8", "read committed", "UTC"], got.join(", "),
                "run tandem apply: it sets client_encoding, default_transaction_isolation and timezone on the role");
        }
        None => {
            let err = json["login"].as_str().unwrap_or("no answer");
            let hint = if err.contains("no pg_hba.conf entry") {
                "pg_hba.conf has no line for this app server: run tandem apply"
            } else if err.contains("password authentication failed") {
                "the role's password differs from the env file's: run tandem apply with the right password"
            } else {
                "check that PostgreSQL is running on the db server (systemctl status postgresql)"
            };
            v.add(name, "login with the app's credentials", false, err, hint);
        }
    }
    if let Some(broker) = config.broker_server() {
        let got = json["broker"].as_str().unwrap_or("no answer");
        v.add(
            name,
            "broker (Redis) login with the app's credentials",
            got == "ok",
            got,
            &format!(
                "check that redis-server runs on {} and that ufw there allows this app server to 6379; run tandem apply",
                broker.name
            ),
        );
    }
    let https = config.tls.enabled();
    if https {
        for (host, location) in json["redirect"].as_object().into_iter().flatten() {
            if host == "tandem-unknown-host.invalid" {
                continue;
            }
            let location = location.as_str().unwrap_or("");
            let status = status_text(&json["http"][host]);
            let want = format!("https://{host}/");
            v.add(
                name,
                &format!("http://{host} redirects to https"),
                status == "301" && location == want,
                format!("HTTP {status} {location}"),
                "the port-80 server must answer 301 to https://: run tandem apply",
            );
        }
    }
    let answers = if https { &json["https"] } else { &json["http"] };
    let unknown = json["http"]["tandem-unknown-host.invalid"].clone();
    if !unknown.is_null() {
        let status = status_text(&unknown);
        v.add(
            name,
            "nginx refuses unknown host names",
            status == "closed",
            format!("unknown Host: {status}"),
            "the default_server with `return 444` is missing: run tandem apply",
        );
    }
    if let Some(http) = answers.as_object() {
        for (host, status) in http {
            let status = status_text(status);
            if host == "tandem-unknown-host.invalid" {
                continue;
            } else {
                // A wildcard is probed with a made-up tenant: nginx must hand it to Django,
                // which may well say 404 (no such tenant); 400 and 5xx are failures.
                let ok = if host.starts_with("tandem-verify.") {
                    status.len() == 3 && status != "400" && !status.starts_with('5')
                } else {
                    status.starts_with('2') || status.starts_with('3')
                };
                let hint = if status == "400" {
                    "Django answered 400 Bad Request: the host is missing from ALLOWED_HOSTS (the env file's DJANGO_ALLOWED_HOSTS), or, for tenants, no tenant has this domain"
                } else if status == "502" {
                    "nginx cannot reach gunicorn: systemctl status gunicorn-<project>.socket/.service"
                } else {
                    "check nginx (nginx -t; systemctl status nginx) and the site's server_name"
                };
                let scheme = if https { "https" } else { "http" };
                v.add(
                    name,
                    &format!("nginx answers {scheme}://{host}"),
                    ok,
                    format!("HTTP {status}"),
                    hint,
                );
            }
        }
    }
}

/// An HTTP status from the on-server script's JSON: a number, or what happened instead.
fn status_text(value: &serde_json::Value) -> String {
    value
        .as_i64()
        .map(|s| s.to_string())
        .unwrap_or_else(|| value.as_str().unwrap_or("?").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// verify's app script parses and its Python compiles, plain and multi-tenant, with HTTPS
    /// on and off.
    #[test]
    fn the_app_script_parses_and_its_python_compiles() {
        use crate::resource::table::{assert_python_heredocs_compile, assert_shell_syntax};
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::testing::shop(dir.path());
        let vars = Vars::for_paths(&config, &config.servers[1]);
        for tenants in [false, true] {
            if tenants {
                config.django.migrate = crate::config::MigrateCommand::MigrateSchemas;
                config.domains.push("*.shop.example.com".into());
                config.tls.mode = crate::config::TlsMode::Off;
            }
            let script = app_script(&config, &vars);
            let what = format!("verify's app script (tenants {tenants})");
            assert_shell_syntax(&script, &what);
            assert_python_heredocs_compile(&script, &what);
        }
    }

    #[test]
    fn the_tenant_checks_survive_the_shells_double_quotes() {
        assert!(!TENANT_CHECKS.contains(['"', '$', '`', '\\']));
    }

    /// The backup checks' (name, ok, detail) for `backup_script`'s output `out`, hourly.
    fn backup_results(out: &str) -> Vec<(String, bool, String)> {
        let db = crate::resource::table::db_server();
        let backup = crate::config::Backup {
            repository: "vault".into(),
            path: "/var/lib/pgbackrest".into(),
            encryption_key: crate::config::PasswordSource::Env("K".into()),
            schedule: crate::config::backup::Schedule::Hourly,
            full_every_days: 7,
            keep_full: 2,
        };
        let mut v = Verification::default();
        backup_checks(&mut v, &db, &backup, "shop", out);
        v.checks
            .into_iter()
            .map(|c| (c.name, c.ok, c.detail))
            .collect()
    }

    fn info(code: i64, stop: i64) -> String {
        format!(
            "[{{\"name\":\"shop\",\"status\":{{\"code\":{code},\"message\":\"m\"}},\"backup\":[{{\"label\":\"l\",\"type\":\"full\",\"error\":false,\"timestamp\":{{\"start\":1,\"stop\":{stop}}},\"info\":{{\"size\":1}}}}]}}]"
        )
    }

    #[test]
    fn backups_pass_when_reachable_recent_and_archiving() {
        let out = format!("now=10000\n{}\n@archiver\n9000 0 -\n", info(0, 9000));
        let results = backup_results(&out);
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(|(_, ok, _)| *ok), "{results:#?}");
    }

    #[test]
    fn backups_fail_when_stale_unreachable_or_archiving_fails() {
        // Older than hourly's 2 h.
        let stale = backup_results(&format!(
            "now=100000\n{}\n@archiver\n99000 0 -\n",
            info(0, 1000)
        ));
        assert!(!stale[1].1 && stale[0].1 && stale[2].1, "{stale:#?}");
        // pgBackRest cannot reach the repository: no JSON, its error.
        let unreachable = backup_results(
            "now=5\nERROR: [105]: remote-0 process on 'vault' terminated unexpectedly\n@archiver\n4 0 -\n",
        );
        assert!(!unreachable[0].1 && !unreachable[1].1, "{unreachable:#?}");
        assert!(unreachable[0].2.contains("terminated unexpectedly"));
        assert!(unreachable[1].2.contains("did not answer"));
        // The last archive attempt failed after the last success.
        let failing = backup_results(&format!(
            "now=10000\n{}\n@archiver\n9000 9500 000000010000000000000007\n",
            info(0, 9000)
        ));
        assert!(!failing[2].1, "{failing:#?}");
        assert!(failing[2].2.contains("000000010000000000000007"));
        // A failure before the last success is history.
        let recovered = backup_results(&format!(
            "now=10000\n{}\n@archiver\n9600 9500 000000010000000000000007\n",
            info(0, 9000)
        ));
        assert!(recovered[2].1, "{recovered:#?}");
    }

    /// (name, ok, detail) of the app checks named `name` for app script output `out`.
    fn app_result(out: &str, name: &str) -> Option<(bool, String)> {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::testing::shop(dir.path());
        let mut v = Verification::default();
        app_checks(&mut v, &config, &config.servers[1], out);
        v.checks
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| (c.ok, c.detail))
    }

    #[test]
    fn migrations_come_from_the_record_or_from_django() {
        let json = |m: &str| format!("json={{\"tcp\": \"ok\"{m}}}\n");
        let check = "no unapplied migrations";
        assert_eq!(
            app_result(&json(", \"migrations\": \"ok\""), check),
            Some((true, "ok".into()))
        );
        let missing = app_result(
            &json(", \"migrations\": \"unapplied: shop.0002_price\""),
            check,
        );
        assert_eq!(missing, Some((false, "unapplied: shop.0002_price".into())));
        // No usable record: the line Django's check printed.
        assert_eq!(
            app_result(&format!("{}migrations=unapplied\n", json("")), check),
            Some((false, "unapplied".into()))
        );
        assert_eq!(
            app_result(&json(""), check),
            Some((false, "not checked".into()))
        );
    }

    #[test]
    fn django_checks_migrations_only_without_a_usable_record() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::testing::shop(dir.path());
        let script = app_script(&config, &Vars::for_paths(&config, &config.servers[1]));
        let (python, after) = script
            .split_once("TANDEM_PY\n)")
            .expect("the Python checks");
        assert!(
            python.contains("'.tandem-migrations'")
                && python.contains("recorded_migrations() if True")
        );
        assert!(
            !python.contains("migrate --check"),
            "Django starts only when needed"
        );
        assert!(after.contains("*'\"migrations\": '*) ;; *)") && after.contains("migrate --check"));
    }
}
