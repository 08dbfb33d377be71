//! One module per kind of thing tandem manages on a host. Each kind holds what to ask the host
//! (its probe query), how to read the answer and compare it with the desired state (pushing a
//! `Change` with its diff or summary, or nothing), and the script that converges it.
//!
//! Adding a kind: a new file here, its `Op` variant in `model::desired`, and one arm in each of
//! `probe_query` and `plan_task` below.

pub mod script;

pub mod absent;
pub mod adopted_directory;
pub mod backup_stanza;
pub mod certificate;
pub mod deploy_user;
pub mod directory;
pub mod etcd_member;
pub mod file;
pub mod hostname;
pub mod live_release_static;
pub mod packages;
pub mod patroni_member;
pub mod pg_hba;
pub mod postgres_database;
pub mod postgres_extensions;
pub mod postgres_facts;
pub mod postgres_first_start;
pub mod postgres_overrides;
pub mod postgres_role;
pub mod postgres_setting_check;
pub mod probe;
pub mod release;
pub mod service;
pub mod symlink;
pub mod system_user;
pub mod ufw_rules;

use similar::TextDiff;

use crate::config::secret::Secret;
use crate::model::desired::{Desired, Op};
use crate::model::facts::{Facts, PG, PG_STOPPED, QueryResult, UFW};
use crate::model::handler::Effect;
use crate::model::plan::{Change, HandlerRun, HostPlan};
use crate::model::playbook::Phase;
use crate::model::ufw::UfwState;
use crate::postgres;
use crate::resource::script::payload;
use postgres_facts::PgFacts;

/// What a kind's planning reads (the host's facts, secrets, the run) and where it puts its
/// changes and notes.
pub struct Context<'a> {
    pub desired: &'a Desired,
    pub facts: &'a Facts,
    pub db_password: &'a Secret,
    pub run_id: &'a str,
    pub changes: Vec<Change>,
    pub notes: Vec<String>,
    /// The host's packages were planned (all at the first packages step).
    pub packages_done: bool,
    pub ufw: UfwState,
    pub pg: PgFacts,
    /// PostgreSQL is installed but does not answer: its roles and databases are unknown.
    pub pg_stopped: bool,
    /// The HTTPS certificate nginx serves (ACME), when the host has one to manage.
    pub certificate: Option<crate::model::state::CertificateState>,
}

impl<'a> Context<'a> {
    pub fn new(
        desired: &'a Desired,
        facts: &'a Facts,
        db_password: &'a Secret,
        run_id: &'a str,
    ) -> Self {
        Context {
            desired,
            facts,
            db_password,
            run_id,
            changes: Vec::new(),
            notes: Vec::new(),
            packages_done: false,
            ufw: UfwState::parse(facts.get(UFW).status, &facts.get(UFW).stdout),
            pg: PgFacts::parse(&facts.get(PG)),
            pg_stopped: facts.get(PG).status == PG_STOPPED,
            certificate: None,
        }
    }

    pub fn push(&mut self, summary: String, detail: Option<String>, script: String) -> &mut Change {
        self.changes.push(Change::new(summary, detail, script));
        self.changes.last_mut().expect("just pushed")
    }

    /// A note shown under the host's plan, once.
    pub fn note(&mut self, note: &str) {
        if !self.notes.iter().any(|n| n == note) {
            self.notes.push(note.to_string());
        }
    }
}

/// Inputs that are not facts: the secrets needed to compare and to write.
pub struct PlanSecrets<'a> {
    pub db_password: &'a Secret,
}

/// Compares `desired` with `facts` for one host: each task through its kind
/// (`resource::plan_task`), then the host-wide passes, then the handlers the changes notify.
pub fn plan_host(
    desired: &Desired,
    facts: &Facts,
    secrets: &PlanSecrets,
    run_id: &str,
) -> HostPlan {
    let mut ctx = Context::new(desired, facts, secrets.db_password, run_id);
    for task in &desired.tasks {
        let before = ctx.changes.len();
        plan_task(&mut ctx, &task.op, &facts.get(&task.probe));
        for change in &mut ctx.changes[before..] {
            // The certificate waits for every app server's provisioning, the backup stanza for
            // the db server's: their own phases.
            if matches!(change.role, Phase::Certificate | Phase::Stanza) {
                change.step = task.step.clone();
                continue;
            }
            change.role = task.role;
            change.step = task.step.clone();
            change.notify = task.notify.clone();
            change.before_build = task.role == Phase::App
                && matches!(task.op, Op::SystemUser { .. } | Op::Directory { .. });
        }
    }
    finish(&mut ctx);
    // Handlers an earlier run made owed but never ran (it died or failed in between): owed
    // still, whether or not this run changes anything.
    let owed = facts.get(crate::model::facts::OWED);
    for h in &desired.handlers {
        let is_owed = owed.ok()
            && owed
                .stdout
                .lines()
                .any(|l| l.trim() == crate::resource::script::owed_file(&h.name));
        if is_owed && !ctx.changes.iter().any(|c| c.notify.contains(&h.name)) {
            let mut change = Change::new(
                format!("~ {} (owed by an earlier run that did not finish)", h.name),
                None,
                "true\n".to_string(),
            );
            change.role = h.phase;
            change.step = "Handlers an interrupted run owes".into();
            change.notify = vec![h.name.clone()];
            change.guarded = h.effect == Effect::SshReload;
            ctx.changes.push(change);
        }
    }
    let notified: Vec<(Phase, String)> = ctx
        .changes
        .iter()
        .flat_map(|c| c.notify.iter().map(move |n| (c.role, n.clone())))
        .collect();
    let handlers = desired
        .handlers
        .iter()
        .filter_map(|h| {
            let role = notified
                .iter()
                .find(|(_, n)| n == &h.name)
                .map(|(r, _)| *r)?;
            Some(HandlerRun {
                role,
                name: h.name.clone(),
                effect: h.effect.clone(),
                check: h.check.clone(),
            })
        })
        .collect();
    HostPlan {
        server: desired.server.name.clone(),
        discovery: facts.discovery.clone(),
        changes: ctx.changes,
        notes: ctx.notes,
        handlers,
        release: None,
        certificate: ctx.certificate,
    }
}

/// The probe query of a task, or `None` when a shared query answers it (ufw, PostgreSQL).
pub fn probe_query(op: &Op) -> Option<String> {
    Some(match op {
        Op::Packages { names } => packages::probe(names),
        Op::DeployUser { user, .. } => deploy_user::probe(user),
        Op::SystemUser { user, .. } => system_user::probe(user),
        Op::Hostname { .. } => hostname::PROBE.to_string(),
        Op::LiveReleaseStatic(spec) => live_release_static::probe(spec),
        Op::File(file) | Op::PostgresConf(crate::model::desired::PostgresConf { file, .. }) => {
            file::probe(&file.path)
        }
        Op::PostgresFirstStart(file) => postgres_first_start::probe(file),
        Op::Directory { path, .. } => directory::probe(path),
        Op::AdoptedDirectory { path, .. } => adopted_directory::probe(path),
        Op::Symlink { link, .. } => symlink::probe(link),
        Op::Absent { path } => absent::probe(path),
        Op::PgHbaBlock { path, .. } => pg_hba::probe(path),
        Op::Service { name, .. } => service::probe(name),
        Op::PlaceholderCertificate { certificate, key } => {
            certificate::placeholder_probe(certificate, key)
        }
        Op::Certificate(spec) => certificate::probe(&spec.path),
        Op::BackupStanza(spec) => backup_stanza::probe(spec),
        Op::EtcdMember(_) => etcd_member::PROBE.to_string(),
        Op::PatroniMember(spec) => patroni_member::probe(spec),
        Op::PostgresRole { .. }
        | Op::PostgresDatabase { .. }
        | Op::PostgresExtensions { .. }
        | Op::UfwDefaults
        | Op::UfwAllow(_)
        | Op::UfwEnable => return None,
    })
}

/// Plans one task from its probe answer `r`.
pub fn plan_task(ctx: &mut Context, op: &Op, r: &QueryResult) {
    match op {
        Op::Packages { .. } => packages::plan(ctx),
        Op::DeployUser {
            user,
            authorized_keys,
        } => deploy_user::plan(ctx, r, user, authorized_keys),
        Op::SystemUser { user, home } => system_user::plan(ctx, r, user, home),
        Op::Hostname { fqdn } => hostname::plan(ctx, r, fqdn),
        Op::LiveReleaseStatic(spec) => live_release_static::plan(ctx, r, spec),
        Op::File(file) | Op::PostgresConf(crate::model::desired::PostgresConf { file, .. }) => {
            file::plan(ctx, r, file)
        }
        Op::PostgresFirstStart(file) => postgres_first_start::plan(ctx, r, file),
        Op::Directory {
            path,
            mode,
            owner,
            group,
        } => directory::plan(ctx, r, path, *mode, owner, group),
        Op::AdoptedDirectory {
            path,
            mode,
            owner,
            group,
            may_hold,
        } => adopted_directory::plan(ctx, r, path, *mode, owner, group, may_hold),
        Op::Symlink { target, link } => symlink::plan(ctx, r, target, link),
        Op::Absent { path } => absent::plan(ctx, r, path),
        Op::UfwDefaults => ufw_rules::plan_defaults(ctx),
        Op::UfwAllow(rule) => ufw_rules::plan_allow(ctx, rule),
        Op::UfwEnable => ufw_rules::plan_enable(ctx),
        Op::PgHbaBlock { path, block } => pg_hba::plan(ctx, r, path, block),
        Op::PostgresRole { .. } | Op::PostgresDatabase { .. } | Op::PostgresExtensions { .. }
            if ctx.pg_stopped =>
        {
            ctx.note(
                "PostgreSQL is installed but stopped: apply starts it first, then checks the \
                 role, database and extensions (unknown until it runs)",
            );
        }
        Op::PostgresRole { .. } | Op::PostgresDatabase { .. } | Op::PostgresExtensions { .. }
            if ctx.pg.standby =>
        {
            if matches!(op, Op::PostgresRole { .. }) {
                ctx.note(
                    "a standby: the role, database and extensions come from the primary by \
                     replication (planned there)",
                );
            }
        }
        Op::PostgresRole {
            role,
            superuser,
            settings,
        } => postgres_role::plan(ctx, role, *superuser, settings),
        Op::PostgresDatabase { name, owner } => postgres_database::plan(ctx, name, owner),
        Op::PostgresExtensions { database, names } => {
            postgres_extensions::plan(ctx, database, names)
        }
        Op::Service {
            name,
            enabled,
            running,
        } => service::plan(ctx, r, name, *enabled, *running),
        Op::PlaceholderCertificate { certificate, key } => {
            certificate::plan_placeholder(ctx, r, certificate, key)
        }
        Op::Certificate(spec) => certificate::plan(ctx, r, spec),
        Op::BackupStanza(spec) => backup_stanza::plan(ctx, r, spec),
        Op::EtcdMember(spec) => etcd_member::plan(ctx, r, spec),
        Op::PatroniMember(spec) => patroni_member::plan(ctx, r, spec),
    }
}

/// Changes that look at the host as a whole, after every task: ufw rules to delete.
pub fn finish(ctx: &mut Context) {
    ufw_rules::prune(ctx);
    ufw_rules::close_database(ctx);
    postgres_overrides::plan(ctx);
    postgres_setting_check::plan(ctx);
    postgres_first_start::before_packages(&mut ctx.changes);
}

/// SQL run by psql as postgres (in `database` when given), sent inside the script.
pub fn psql_script(database: Option<&str>, sql: &str) -> String {
    let psql = format!("| {}", postgres::psql(database));
    format!(
        "set -e\n{}\n",
        payload(format!("{sql}\n").as_bytes(), &psql)
    )
}

/// A unified diff from what the host has to what tandem writes.
pub fn unified(old: &str, new: &str, name: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{name} (now)"), &format!("{name} (tandem)"))
        .to_string()
}

/// For the kinds' tables: "desired + probed -> exactly these changes, or none".
#[cfg(test)]
pub mod table {
    use super::*;
    use crate::config::{Role, Server};
    use crate::model::desired::Task;
    use crate::model::playbook::Phase;

    /// A directory `bin` in `dir` holding `systemctl`, a shell script with `body`, to put
    /// first in PATH.
    pub fn fake_systemctl(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let systemctl = bin.join("systemctl");
        std::fs::write(&systemctl, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    /// The summaries of the changes planned for `op` when its probe answered `status` and
    /// `stdout`, with `shared` answers of the shared queries (`ufw`, `pg`).
    pub fn plan(op: Op, status: i32, stdout: &str, shared: &[(&str, i32, &str)]) -> Vec<Change> {
        let desired = Desired {
            server: db_server(),
            tasks: vec![Task {
                role: Phase::Base,
                step: "a step".into(),
                op,
                notify: Vec::new(),
                probe: "t0".into(),
            }],
            handlers: Vec::new(),
        };
        let mut results = std::collections::BTreeMap::new();
        results.insert(
            "t0".to_string(),
            QueryResult {
                status,
                stdout: stdout.to_string(),
            },
        );
        for (id, status, stdout) in shared {
            results.insert(
                id.to_string(),
                QueryResult {
                    status: *status,
                    stdout: stdout.to_string(),
                },
            );
        }
        let facts = Facts {
            discovery: Default::default(),
            results,
        };
        let password = Secret::new("c0rrect horse".into());
        let mut ctx = Context::new(&desired, &facts, &password, "run1");
        plan_task(
            &mut ctx,
            &desired.tasks[0].op,
            &facts.get(&desired.tasks[0].probe),
        );
        finish(&mut ctx);
        for c in &ctx.changes {
            for script in [Some(&c.script), c.undo.as_ref()].into_iter().flatten() {
                assert_shell_syntax(script, &c.summary);
            }
        }
        ctx.changes
    }

    /// Each Python heredoc of `script` (`<<'TANDEM_PY'` ... `TANDEM_PY`) compiles.
    pub fn assert_python_heredocs_compile(script: &str, what: &str) {
        let mut found = 0;
        let mut rest = script;
        while let Some(at) = rest.find("<<'TANDEM_PY'\n") {
            let body = &rest[at + "<<'TANDEM_PY'\n".len()..];
            let end = body
                .find("\nTANDEM_PY\n")
                .or_else(|| body.strip_prefix("TANDEM_PY\n").map(|_| 0))
                .unwrap_or_else(|| panic!("`{what}`: a heredoc with no end"));
            assert_python_compiles(&body[..end], what);
            found += 1;
            rest = &body[end..];
        }
        assert!(found > 0, "`{what}` has no Python heredoc");
    }

    /// `python3`'s `compile()`: the source is Python the servers' 3.11+ takes.
    pub fn assert_python_compiles(source: &str, what: &str) {
        let python = [
            "-c",
            "import sys; compile(sys.stdin.read(), 'tandem', 'exec')",
        ];
        if let Err(why) = checked_by("python3", &python, source) {
            panic!("the Python of `{what}` does not compile: {why}\n{source}");
        }
    }

    /// Runs `program args` with `input` on stdin: its stderr when it fails.
    fn checked_by(program: &str, args: &[&str], input: &str) -> Result<(), String> {
        use std::io::Write;
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        match out.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    /// Every file under scripts/ parses as it is, before anything is filled in (the
    /// placeholders are names and strings): Python compiles, shell parses.
    #[test]
    fn every_remote_script_file_parses() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
        let mut seen = 0;
        for dir in std::fs::read_dir(&root).unwrap() {
            for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                let what = path.display().to_string();
                match path.extension().and_then(|e| e.to_str()) {
                    Some("py") => assert_python_compiles(&text, &what),
                    Some("sh") => assert_shell_syntax(&text, &what),
                    _ => panic!("{what}: scripts/ holds .py and .sh files"),
                }
                seen += 1;
            }
        }
        assert!(seen >= 7, "{seen} scripts");
    }

    /// Facts whose shared PostgreSQL query answered `rows`.
    pub fn pg_facts(rows: &str) -> Facts {
        Facts {
            discovery: Default::default(),
            results: [(
                PG.to_string(),
                QueryResult {
                    status: 0,
                    stdout: rows.into(),
                },
            )]
            .into(),
        }
    }

    /// `sh -n`: the script parses (as the hosts' /bin/sh reads it).
    pub fn assert_shell_syntax(script: &str, what: &str) {
        if let Err(why) = checked_by("sh", &["-n"], script) {
            panic!("the script of `{what}` does not parse: {why}\n{script}");
        }
    }

    /// The database server the tables plan for.
    pub fn db_server() -> Server {
        Server {
            name: "db".into(),
            role: Role::Db,
            ssh: "deploy@db.example.com".into(),
            fqdn: "db.example.com".into(),
            internal_ip: "10.0.0.3".parse().unwrap(),
        }
    }

    /// Just the summaries.
    pub fn summaries(changes: &[Change]) -> Vec<String> {
        changes.iter().map(|c| c.summary.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;
    use crate::model::desired::Desired;
    use crate::model::desired::RenderedHandler;
    use crate::model::facts::Facts;
    use crate::model::facts::QueryResult;
    use crate::model::playbook::HandlerAction;

    #[test]
    fn a_handler_an_interrupted_run_owes_is_planned_again() {
        let desired = Desired {
            server: crate::resource::table::db_server(),
            tasks: Vec::new(),
            handlers: vec![RenderedHandler {
                phase: Phase::Db,
                name: "reload postgresql".into(),
                effect: Effect::of("postgresql", HandlerAction::Reload, String::new),
                check: None,
            }],
        };
        let password = Secret::new("x".into());
        let plan = |owed: &str| {
            let mut facts = Facts::default();
            facts.results.insert(
                crate::model::facts::OWED.into(),
                QueryResult {
                    status: 0,
                    stdout: owed.into(),
                },
            );
            plan_host(
                &desired,
                &facts,
                &PlanSecrets {
                    db_password: &password,
                },
                "run",
            )
        };
        let owed = plan("reload postgresql\n");
        assert_eq!(owed.changes.len(), 1);
        assert_eq!(owed.changes[0].role, Phase::Db);
        assert_eq!(owed.handlers.len(), 1);
        assert_eq!(owed.handlers[0].name, "reload postgresql");
        assert!(plan("").changes.is_empty() && plan("").handlers.is_empty());
    }
}
