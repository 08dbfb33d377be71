//! `Plan`: what apply would change on each host, computed purely from the desired state and
//! the probed facts. Each `Change` carries what to show (summary, diff, redacted SQL) and the
//! script that makes it, which is never shown or serialised.

use std::fmt;

use serde::Serialize;
use similar::TextDiff;

use crate::desired::{Desired, FileSpec, Op};
use crate::facts::{Discovery, Facts, PG, PG_STOPPED, QueryResult, UFW};
use crate::identifier::{shell_word, sql_ident, sql_literal};
use crate::playbook::{HandlerAction, Phase};
use crate::postgres;
use crate::scram;
use crate::script::{self, payload};
use crate::secret::Secret;
use crate::sql;
use crate::ufw::{UfwRule, UfwState};

#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub role: Phase,
    pub step: String,
    /// One line: `+ create`, `~ update`, `- remove`.
    pub summary: String,
    /// A unified diff or the SQL/commands, secrets redacted.
    pub detail: Option<String>,
    pub notify: Vec<String>,
    /// Touches sshd or ufw: apply arms the lockout guard first.
    pub guarded: bool,
    /// Prepares the host (installs packages, starts a stopped PostgreSQL): apply does these
    /// first on every host, then probes again, because they create files, services and
    /// database facts the first probe could not see.
    pub prepare: bool,
    /// The managed file (or link) this change writes or removes, if it is one: verify reports
    /// these as drift.
    pub file: Option<String>,
    #[serde(skip)]
    pub script: String,
    /// Puts back what `script` replaced (from the run's backup), for when a handler's check
    /// (`nginx -t`, ...) fails after this change: a config that fails its check never stays.
    #[serde(skip)]
    pub undo: Option<String>,
}

/// A handler to run after its role's changes.
#[derive(Clone, Debug, Serialize)]
pub struct HandlerRun {
    pub role: Phase,
    pub name: String,
    pub service: String,
    pub action: HandlerAction,
    pub check: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostPlan {
    pub server: String,
    pub discovery: Discovery,
    pub changes: Vec<Change>,
    /// Things worth knowing that are not changes (e.g. a PostgreSQL restart owed).
    pub notes: Vec<String>,
    #[serde(skip)]
    pub handlers: Vec<HandlerRun>,
    /// Releases on an app server.
    pub release: Option<crate::release::ReleaseState>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub hosts: Vec<HostPlan>,
}

impl Plan {
    pub fn change_count(&self) -> usize {
        self.hosts.iter().map(|h| h.changes.len()).sum()
    }
}

/// Inputs that are not facts: the secrets needed to compare and to write.
pub struct PlanSecrets<'a> {
    pub db_password: &'a Secret,
}

/// Compares `desired` with `facts` for one host.
pub fn plan_host(
    desired: &Desired,
    facts: &Facts,
    secrets: &PlanSecrets,
    run_id: &str,
) -> HostPlan {
    let mut p = Planner {
        desired,
        facts,
        secrets,
        run_id,
        changes: Vec::new(),
        notes: Vec::new(),
        packages_done: false,
        ufw: UfwState::parse(facts.get(UFW).status, &facts.get(UFW).stdout),
        pg: PgFacts::parse(&facts.get(PG)),
        pg_stopped: facts.get(PG).status == PG_STOPPED,
    };
    for (i, task) in desired.tasks.iter().enumerate() {
        let before = p.changes.len();
        p.task(i);
        for change in &mut p.changes[before..] {
            change.role = task.role;
            change.step = task.step.clone();
            change.notify = task.notify.clone();
        }
    }
    p.prune_ufw();
    p.close_database();
    let notified: Vec<(Phase, String)> = p
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
                service: h.service.clone(),
                action: h.action,
                check: h.check.clone(),
            })
        })
        .collect();
    HostPlan {
        server: desired.server.name.clone(),
        discovery: facts.discovery.clone(),
        changes: p.changes,
        notes: p.notes,
        handlers,
        release: None,
    }
}

struct Planner<'a> {
    desired: &'a Desired,
    facts: &'a Facts,
    secrets: &'a PlanSecrets<'a>,
    run_id: &'a str,
    changes: Vec<Change>,
    notes: Vec<String>,
    packages_done: bool,
    ufw: UfwState,
    pg: PgFacts,
    /// PostgreSQL is installed but does not answer: its roles and databases are unknown.
    pg_stopped: bool,
}

impl Change {
    /// A change of the Django release (ship, roll back): no handlers, no packages, no guard.
    pub fn release(step: &str, summary: String, script: String) -> Change {
        Change {
            role: Phase::Release,
            step: step.into(),
            ..change(summary, None, script)
        }
    }
}

fn change(summary: String, detail: Option<String>, script: String) -> Change {
    Change {
        // Set from the task by `plan_host` (or by the caller for its own changes).
        role: Phase::Base,
        step: String::new(),
        summary,
        detail,
        notify: Vec::new(),
        guarded: false,
        prepare: false,
        file: None,
        script,
        undo: None,
    }
}

impl Planner<'_> {
    fn push(&mut self, summary: String, detail: Option<String>, script: String) -> &mut Change {
        self.changes.push(change(summary, detail, script));
        self.changes.last_mut().expect("just pushed")
    }

    fn task(&mut self, i: usize) {
        let r = self.facts.task(i);
        match &self.desired.tasks[i].op {
            Op::Packages { .. } => self.packages(),
            Op::DeployUser {
                user,
                authorized_keys,
            } => self.deploy_user(&r, user, authorized_keys),
            Op::SystemUser { user, home } => {
                if !r.ok() {
                    let script = format!(
                        "set -e\ngetent passwd {u} >/dev/null || useradd --system --user-group --home-dir {h} --no-create-home --shell /usr/sbin/nologin {u}\n",
                        u = shell_word(user),
                        h = shell_word(home)
                    );
                    self.push(
                        format!("+ system user {user} (home {home}, no login)"),
                        None,
                        script,
                    );
                }
            }
            Op::Hostname { fqdn } => {
                let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
                if lines.first() != Some(&fqdn.as_str()) || lines.get(1) != Some(&fqdn.as_str()) {
                    let short = fqdn.split('.').next().unwrap_or(fqdn);
                    let script = format!(
                        "set -e\nF={f}\nhostnamectl set-hostname \"$F\" 2>/dev/null || {{ echo \"$F\" >/etc/hostname; hostname \"$F\"; }}\n\
                         grep -v '^127\\.0\\.1\\.1[[:space:]]' /etc/hosts >/etc/hosts.tandem-new || true\n\
                         printf '127.0.1.1\\t%s %s\\n' \"$F\" {s} >>/etc/hosts.tandem-new\nmv -f /etc/hosts.tandem-new /etc/hosts\nchmod 644 /etc/hosts\n",
                        f = shell_word(fqdn),
                        s = shell_word(short)
                    );
                    let now = lines.get(1).copied().unwrap_or("?");
                    self.push(format!("~ hostname {now} -> {fqdn}"), None, script);
                }
            }
            Op::File(file) => self.file(&r, file),
            Op::Directory {
                path,
                mode,
                owner,
                group,
            } => {
                let want = format!("directory {} {owner} {group}", normal_mode(mode));
                if !r.ok() || r.stdout.trim() != want {
                    let script = format!(
                        "set -e\ninstall -d -m {m} -o {o} -g {g} {p}\n",
                        m = shell_word(mode),
                        o = shell_word(owner),
                        g = shell_word(group),
                        p = shell_word(path)
                    );
                    let verb = if r.ok() { "~" } else { "+" };
                    self.push(
                        format!("{verb} directory {path} ({mode} {owner}:{group})"),
                        None,
                        script,
                    );
                }
            }
            Op::Symlink { target, link } => {
                if !r.ok() || r.stdout.trim() != target {
                    let script = format!(
                        "set -e\nln -sfn {} {}\n",
                        shell_word(target),
                        shell_word(link)
                    );
                    let undo = if r.ok() {
                        format!(
                            "ln -sfn {} {}\n",
                            shell_word(r.stdout.trim()),
                            shell_word(link)
                        )
                    } else {
                        format!("rm -f {}\n", shell_word(link))
                    };
                    let c = self.push(format!("+ symlink {link} -> {target}"), None, script);
                    c.undo = Some(undo);
                    c.file = Some(link.clone());
                }
            }
            Op::Absent { path } => {
                if r.ok() {
                    let script = script::remove(path, self.run_id);
                    let undo = script::undo(path, self.run_id);
                    let c = self.push(format!("- remove {path}"), None, script);
                    c.undo = Some(undo);
                    c.file = Some(path.clone());
                }
            }
            Op::UfwDefaults => {
                if self.ufw.incoming != "deny" || self.ufw.outgoing != "allow" {
                    let script = "set -e\nufw default deny incoming\nufw default allow outgoing\n"
                        .to_string();
                    self.push(
                        "~ ufw default deny incoming, allow outgoing".into(),
                        None,
                        script,
                    )
                    .guarded = true;
                }
            }
            Op::UfwAllow(rule) => {
                if !self.ufw.has(rule) {
                    let script = format!("set -e\n{rule}\n");
                    self.push(format!("+ {rule}"), None, script).guarded = true;
                }
            }
            Op::UfwEnable => {
                if !self.ufw.active {
                    let script = "set -e\nufw --force enable\n".to_string();
                    self.push("+ ufw --force enable".into(), None, script)
                        .guarded = true;
                }
            }
            Op::PgHbaBlock { path, block } => self.pg_hba(&r, path, block),
            Op::PostgresRole { .. }
            | Op::PostgresDatabase { .. }
            | Op::PostgresExtensions { .. }
                if self.pg_stopped =>
            {
                let note = "PostgreSQL is installed but stopped: apply starts it first, then \
                            checks the role, database and extensions (unknown until it runs)";
                if !self.notes.iter().any(|n| n == note) {
                    self.notes.push(note.to_string());
                }
            }
            Op::PostgresRole {
                role,
                superuser,
                settings,
            } => self.role(role, *superuser, settings),
            Op::PostgresDatabase { name, owner } => self.database(name, owner),
            Op::PostgresExtensions { database, names } => {
                let missing: Vec<&String> = names
                    .iter()
                    .filter(|n| !self.pg.extensions.contains(n))
                    .collect();
                if !missing.is_empty() {
                    let sql: Vec<String> =
                        missing.iter().map(|n| sql::create_extension(n)).collect();
                    let script = psql_script(Some(database), &sql.join("\n"));
                    let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                    self.push(
                        format!("+ extensions {} in {database}", names.join(", ")),
                        Some(sql.join("\n")),
                        script,
                    );
                }
            }
            Op::Service {
                name,
                enabled,
                running,
            } => {
                let mut lines = r.stdout.lines().map(str::trim).filter(|l| !l.is_empty());
                let is_enabled = lines.next().unwrap_or("");
                let is_active = lines.next().unwrap_or("");
                let mut todo = Vec::new();
                if *enabled && !matches!(is_enabled, "enabled" | "static" | "alias") {
                    todo.push("enable");
                }
                if *running && is_active != "active" {
                    todo.push("start");
                }
                if !todo.is_empty() {
                    let n = shell_word(name);
                    let mut script = String::from("set -e\n");
                    if todo.contains(&"enable") {
                        script.push_str(&format!("systemctl enable {n}\n"));
                    }
                    if todo.contains(&"start") {
                        script.push_str(&format!("systemctl start {n}\n"));
                    }
                    // Started in the prepare phase, so the second probe sees its database.
                    let prepare = self.pg_stopped && name == "postgresql";
                    self.push(
                        format!("~ service {name}: {}", todo.join(" and ")),
                        None,
                        script,
                    )
                    .prepare = prepare;
                }
            }
        }
    }

    /// All missing packages of the host, in one apt transaction at the first packages step.
    fn packages(&mut self) {
        if self.packages_done {
            return;
        }
        self.packages_done = true;
        let mut missing: Vec<&str> = Vec::new();
        for (i, task) in self.desired.tasks.iter().enumerate() {
            if let Op::Packages { names } = &task.op {
                let installed = self.facts.task(i).stdout;
                for name in names {
                    let ok = installed.lines().any(|l| {
                        let mut w = l.split_whitespace();
                        w.next() == Some(name.as_str()) && w.next() == Some("ii")
                    });
                    if !ok && !missing.contains(&name.as_str()) {
                        missing.push(name);
                    }
                }
            }
        }
        if missing.is_empty() {
            return;
        }
        let list: Vec<String> = missing.iter().map(|p| shell_word(p)).collect();
        let script = format!(
            "export DEBIAN_FRONTEND=noninteractive\n\
             L='-o DPkg::Lock::Timeout=300'\n\
             for i in 1 2 3 4; do\n  dpkg --force-confold --configure -a </dev/null >/dev/null 2>&1 || true\n  apt-get $L update -qq && apt-get $L install -y -qq -o Dpkg::Options::=--force-confold {} >/dev/null && exit 0\n  sleep $((i * 5))\ndone\nexit 1\n",
            list.join(" ")
        );
        self.push(format!("+ apt install {}", missing.join(" ")), None, script)
            .prepare = true;
    }

    fn deploy_user(&mut self, r: &QueryResult, user: &str, keys: &[String]) {
        let want_keys: String = keys.iter().map(|k| format!("{k}\n")).collect();
        let (exists, in_sudo, have_keys) = if r.status == 3 || !r.ok() {
            (false, false, String::new())
        } else {
            let (head, keys_part) = r.stdout.split_once("---\n").unwrap_or((&r.stdout, ""));
            let groups = head.lines().next().unwrap_or("");
            (
                true,
                groups.split_whitespace().any(|g| g == "sudo"),
                keys_part.to_string(),
            )
        };
        if exists && in_sudo && have_keys == want_keys {
            return;
        }
        let u = shell_word(user);
        let script = format!(
            "set -e\nid -u {u} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {u}\n\
             usermod -aG sudo {u}\nH=$(getent passwd {u} | cut -d: -f6)\n\
             install -d -m 700 -o {u} -g \"$(id -gn {u})\" \"$H/.ssh\"\n\
             {}\n\
             chown {u}:\"$(id -gn {u})\" \"$H/.ssh/authorized_keys.tandem-new\"\nchmod 600 \"$H/.ssh/authorized_keys.tandem-new\"\n\
             mv -f \"$H/.ssh/authorized_keys.tandem-new\" \"$H/.ssh/authorized_keys\"\n",
            payload(
                want_keys.as_bytes(),
                ">\"$H/.ssh/authorized_keys.tandem-new\""
            )
        );
        let summary = if !exists {
            format!("+ user {user} (sudo) with {} authorized key(s)", keys.len())
        } else {
            format!("~ user {user}: sudo group and authorized keys")
        };
        let detail =
            (have_keys != want_keys).then(|| unified(&have_keys, &want_keys, "authorized_keys"));
        // The operator's way in: under the lockout guard like sshd and ufw.
        self.push(summary, detail, script).guarded = true;
    }

    fn file(&mut self, r: &QueryResult, file: &FileSpec) {
        let (exists, meta, content) = if r.ok() {
            let (meta, content) = r.stdout.split_once('\n').unwrap_or((&r.stdout, ""));
            (true, meta.trim().to_string(), content.to_string())
        } else {
            (false, String::new(), String::new())
        };
        let want_meta = format!("{} {} {}", normal_mode(&file.mode), file.owner, file.group);
        let content_same = exists && content == file.content;
        if content_same && meta == want_meta {
            return;
        }
        // sshd's config and the deploy user's sudo rights decide whether the operator gets in.
        let guarded =
            file.path.starts_with("/etc/ssh/") || file.path.starts_with("/etc/sudoers.d/");
        let summary = match (exists, content_same) {
            (false, _) => format!(
                "+ file {} ({} {}:{})",
                file.path, file.mode, file.owner, file.group
            ),
            (true, true) => format!("~ file {}: mode/owner {meta} -> {want_meta}", file.path),
            (true, false) => format!("~ file {}", file.path),
        };
        let detail = if content_same {
            None
        } else if file.secret {
            Some("(holds secrets: content not shown)".to_string())
        } else {
            Some(unified(&content, &file.content, &file.path))
        };
        let script = script::write_file(file, self.run_id);
        let undo = script::undo(&file.path, self.run_id);
        let c = self.push(summary, detail, script);
        c.guarded = guarded;
        c.undo = Some(undo);
        c.file = Some(file.path.clone());
    }

    fn pg_hba(&mut self, r: &QueryResult, path: &str, block: &str) {
        let current = if r.ok() {
            r.stdout.clone()
        } else {
            String::new()
        };
        let wanted = postgres::splice_block(&current, block);
        if r.ok() && wanted == current {
            return;
        }
        let check = format!(
            "ERR=$({} -XAtc 'SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL' 2>&1) || ERR=failed",
            "cd / && runuser -u postgres -- psql"
        );
        let script = format!(
            "set -e\numask 077\nDEST={p}\nBACKUP=\"{state}/backups/{run}/$(printf %s \"$DEST\" | tr / %)\"\n\
             mkdir -p \"$(dirname \"$BACKUP\")\"\ncp -a \"$DEST\" \"$BACKUP\"\n\
             BLOCK=$(mktemp)\nNEW=\"$DEST.tandem-new\"\n{}\n{}\nrm -f \"$BLOCK\"\n\
             chown --reference=\"$DEST\" \"$NEW\"\nchmod --reference=\"$DEST\" \"$NEW\"\nmv -f \"$NEW\" \"$DEST\"\n\
             {check}\nif [ \"$ERR\" != 0 ]; then cp -a \"$BACKUP\" \"$DEST\"; \
             echo \"pg_hba.conf rejected by PostgreSQL (pg_hba_file_rules: $ERR errors); previous file restored\" >&2; \
             {psql} -XAt -c 'SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL' >&2 || true; exit 1; fi\n",
            payload(block.as_bytes(), ">\"$BLOCK\""),
            postgres::splice_shell(path, block),
            p = shell_word(path),
            state = script::STATE_DIR,
            run = shell_word(self.run_id),
            psql = "cd / && runuser -u postgres -- psql",
        );
        let detail = unified(&current, &wanted, path);
        let verb = if r.ok() { "~" } else { "+" };
        let foreign = postgres::foreign_lines(&current, block).len();
        let summary = if foreign > 0 {
            format!(
                "~ {path}: disable {foreign} line(s) admitting machines other than the app \
                 servers and database.allow{}",
                if current.contains(block) {
                    ""
                } else {
                    "; tandem block"
                }
            )
        } else {
            format!("{verb} tandem block in {path}")
        };
        self.push(summary, Some(detail), script).file = Some(path.to_string());
    }

    fn role(&mut self, role: &str, superuser: bool, settings: &[(String, String)]) {
        let mut sql_shown = Vec::new();
        let mut sql_run = Vec::new();
        let mut what = Vec::new();
        let password = self.secrets.db_password.expose();
        let redacted = "'<redacted SCRAM-SHA-256 verifier>'";
        match &self.pg.role {
            None => {
                let verifier = sql_literal(&scram::verifier(password));
                sql_shown.push(sql::create_role(role, superuser, redacted));
                sql_run.push(format!(
                    "DO $tandem$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) THEN CREATE ROLE {}; END IF; END $tandem$;",
                    sql_literal(role),
                    sql_ident(role)
                ));
                sql_run.push(format!(
                    "ALTER ROLE {} LOGIN {} NOCREATEDB NOCREATEROLE PASSWORD {verifier};",
                    sql_ident(role),
                    if superuser {
                        "SUPERUSER"
                    } else {
                        "NOSUPERUSER"
                    }
                ));
                what.push("create".to_string());
            }
            Some(have) => {
                if have.superuser != superuser || !have.login || have.createdb || have.createrole {
                    let attrs = format!(
                        "ALTER ROLE {} LOGIN {} NOCREATEDB NOCREATEROLE;",
                        sql_ident(role),
                        if superuser {
                            "SUPERUSER"
                        } else {
                            "NOSUPERUSER"
                        }
                    );
                    sql_shown.push(attrs.clone());
                    sql_run.push(attrs);
                    what.push("attributes".to_string());
                }
                if !scram::matches(&have.password, password) {
                    let verifier = sql_literal(&scram::verifier(password));
                    sql_shown.push(sql::set_role_password(role, redacted));
                    sql_run.push(sql::set_role_password(role, &verifier));
                    what.push("password".to_string());
                }
            }
        }
        for (name, value) in settings {
            // PostgreSQL stores names in their canonical case (`TimeZone=UTC`).
            let want = format!("{name}={value}");
            if !self
                .pg
                .role_settings
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&want))
            {
                let s = sql::role_setting(role, name, value);
                sql_shown.push(s.clone());
                sql_run.push(s);
                if !what.contains(&"create".to_string()) {
                    what.push(name.clone());
                }
            }
        }
        if sql_run.is_empty() {
            return;
        }
        let verb = if self.pg.role.is_none() { "+" } else { "~" };
        let summary = format!("{verb} role {role}: {}", what.join(", "));
        let script = psql_script(None, &sql_run.join("\n"));
        self.push(summary, Some(sql_shown.join("\n")), script);
    }

    fn database(&mut self, name: &str, owner: &str) {
        let mut shown = Vec::new();
        let mut run = Vec::new();
        let summary = match &self.pg.database {
            None => {
                shown.push(sql::create_database(name, owner));
                run.push(format!(
                    "SELECT {} WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {}) \\gexec",
                    sql_literal(&sql::create_database(name, owner)),
                    sql_literal(name)
                ));
                shown.push(sql::revoke_public_connect(name));
                run.push(sql::revoke_public_connect(name));
                format!("+ database {name} owned by {owner}")
            }
            Some((have_owner, public_connect)) => {
                if have_owner != owner {
                    let s = format!(
                        "ALTER DATABASE {} OWNER TO {};",
                        sql_ident(name),
                        sql_ident(owner)
                    );
                    shown.push(s.clone());
                    run.push(s);
                }
                if *public_connect {
                    shown.push(sql::revoke_public_connect(name));
                    run.push(sql::revoke_public_connect(name));
                }
                if run.is_empty() {
                    return;
                }
                format!("~ database {name}")
            }
        };
        let script = psql_script(None, &run.join("\n"));
        self.push(summary, Some(shown.join("\n")), script);
    }

    /// tandem's own ufw rules that the config no longer wants (an app server that moved or
    /// left): deleted at the end, after the new rules are in.
    fn prune_ufw(&mut self) {
        let wanted: Vec<&UfwRule> = self
            .desired
            .tasks
            .iter()
            .filter_map(|t| match &t.op {
                Op::UfwAllow(rule) => Some(rule),
                _ => None,
            })
            .collect();
        let unwanted: Vec<UfwRule> = self.ufw.unwanted(&wanted).into_iter().cloned().collect();
        for rule in unwanted {
            let args: Vec<String> = rule.args().iter().map(|w| shell_word(w)).collect();
            let script = format!("set -e\nufw delete {}\n", args.join(" "));
            let c = self.push(format!("- {rule} (no longer in the config)"), None, script);
            c.role = Phase::Base;
            c.step = "Prune ufw rules tandem no longer wants".into();
            c.guarded = true;
        }
    }
}

impl Planner<'_> {
    /// On the database server: any ufw rule that lets others than the database's clients
    /// (the app servers and `database.allow`) reach PostgreSQL's port, whoever added it, is
    /// deleted after tandem's own rules are in.
    fn close_database(&mut self) {
        let clients: Vec<std::net::IpAddr> = self
            .desired
            .tasks
            .iter()
            .filter_map(|t| match &t.op {
                Op::UfwAllow(rule) if rule.port == postgres::PORT => rule.from,
                _ => None,
            })
            .collect();
        if clients.is_empty() {
            return;
        }
        let wider: Vec<_> = self
            .ufw
            .opening_wider(postgres::PORT, "tcp", &clients)
            .into_iter()
            .cloned()
            .collect();
        for rule in wider {
            let script = format!("set -e\n{}\n", rule.delete_command());
            let c = self.push(
                format!(
                    "- ufw rule {} (admits more than the app servers and database.allow)",
                    rule.describe()
                ),
                None,
                script,
            );
            c.role = Phase::Db;
            c.step = "Close PostgreSQL's port to everyone but its clients".into();
            c.guarded = true;
        }
    }
}

/// What the probe found in PostgreSQL.
#[derive(Debug, Default)]
struct PgFacts {
    role: Option<PgRole>,
    role_settings: Vec<String>,
    /// (owner, PUBLIC may connect)
    database: Option<(String, bool)>,
    extensions: Vec<String>,
}

#[derive(Debug)]
struct PgRole {
    superuser: bool,
    login: bool,
    createdb: bool,
    createrole: bool,
    password: String,
}

impl PgFacts {
    fn parse(pg: &QueryResult) -> PgFacts {
        let mut f = PgFacts::default();
        if pg.ok() {
            for line in pg.stdout.lines() {
                let cols: Vec<&str> = line.split('|').collect();
                match cols.as_slice() {
                    ["role", _, su, login, cdb, crole, pw @ ..] => {
                        f.role = Some(PgRole {
                            superuser: *su == "t",
                            login: *login == "t",
                            createdb: *cdb == "t",
                            createrole: *crole == "t",
                            password: pw.join("|"),
                        })
                    }
                    ["rolesetting", s] => f.role_settings.push(s.to_string()),
                    ["database", _, owner, public] => {
                        f.database = Some((owner.to_string(), *public == "t"))
                    }
                    ["extension", name] => f.extensions.push(name.trim().to_string()),
                    _ => {}
                }
            }
        }
        f
    }
}

/// `(name, current value, context)` of each PostgreSQL setting the probe read.
pub fn pg_settings(facts: &Facts) -> Vec<(String, String, String)> {
    let pg = facts.get(PG);
    if !pg.ok() {
        return Vec::new();
    }
    pg.stdout
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').collect();
            match cols.as_slice() {
                ["setting", name, value, context, _pending] => {
                    Some((name.to_string(), value.to_string(), context.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

/// Notes on what a changed conf.d drop-in will need: a reload, or a restart for settings
/// whose `pg_settings.context` is `postmaster`.
pub fn postgres_restart_notes(desired: &Desired, facts: &Facts) -> Vec<String> {
    let current = pg_settings(facts);
    let mut notes = Vec::new();
    for task in &desired.tasks {
        let Op::File(file) = &task.op else { continue };
        if !(file.path.contains("/postgresql/") && file.path.contains("/conf.d/")) {
            continue;
        }
        for (name, value) in postgres::settings(&file.content) {
            match current.iter().find(|(n, _, _)| *n == name) {
                Some((_, have, context)) if have != &value => notes.push(format!(
                    "PostgreSQL {} owed: {name} '{have}' -> '{value}' (context {context})",
                    if context == "postmaster" { "restart" } else { "reload" }
                )),
                Some(_) => {}
                None if facts.get(PG).status == PG_STOPPED => notes.push(format!(
                    "PostgreSQL is stopped: {name} = '{value}' takes effect when apply starts it"
                )),
                None => notes.push(format!(
                    "PostgreSQL is not installed yet: {name} takes effect when apply restarts it if pg_settings says so"
                )),
            }
        }
    }
    notes.dedup();
    notes
}

fn psql_script(database: Option<&str>, sql: &str) -> String {
    let psql = format!("| {}", postgres::psql(database));
    format!(
        "set -e\n{}\n",
        payload(format!("{sql}\n").as_bytes(), &psql)
    )
}

fn normal_mode(mode: &str) -> String {
    let trimmed = mode.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}

fn unified(old: &str, new: &str, name: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{name} (now)"), &format!("{name} (tandem)"))
        .to_string()
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for host in &self.hosts {
            let d = &host.discovery;
            let is_db = host.changes.iter().any(|c| c.role == Phase::Db)
                || host.notes.iter().any(|n| n.contains("PostgreSQL"));
            let pg = d
                .postgres_version
                .as_deref()
                .filter(|_| is_db || d.postgres_installed)
                .map(|v| {
                    format!(
                        ", PostgreSQL {v}{}",
                        if d.postgres_installed {
                            ""
                        } else {
                            " (to install)"
                        }
                    )
                })
                .unwrap_or_default();
            writeln!(
                f,
                "{} ({} {}{pg}): {} change(s)",
                host.server,
                d.os,
                d.os_version,
                host.changes.len()
            )?;
            for c in &host.changes {
                writeln!(f, "  {}    [{}: {}]", c.summary, c.role, c.step)?;
                if let Some(detail) = &c.detail {
                    for line in detail.lines() {
                        writeln!(f, "      {line}")?;
                    }
                }
            }
            for h in &host.handlers {
                writeln!(f, "  then: {} ({})", h.name, h.service)?;
            }
            for n in &host.notes {
                writeln!(f, "  note: {n}")?;
            }
        }
        let total = self.change_count();
        if total == 0 {
            write!(f, "No changes: every server matches tandem.yml.")
        } else {
            let per: Vec<String> = self
                .hosts
                .iter()
                .map(|h| format!("{} {}", h.server, h.changes.len()))
                .collect();
            write!(f, "Plan: {total} change(s) ({}).", per.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_psql_session_answers_role_database_and_extensions() {
        let pg = QueryResult {
            status: 0,
            stdout: "role|app|f|t|f|f|SCRAM-SHA-256$4096:salt$a:b\nrolesetting|timezone=UTC\n\
                     database|app|app|f\nextension|plpgsql\nextension|citext\n"
                .into(),
        };
        let f = PgFacts::parse(&pg);
        assert_eq!(f.extensions, ["plpgsql", "citext"]);
        assert_eq!(f.database, Some(("app".to_string(), false)));
        assert_eq!(f.role_settings, ["timezone=UTC"]);
        assert!(f.role.is_some_and(|r| r.login && !r.superuser));
        let failed = QueryResult {
            status: 3,
            stdout: String::new(),
        };
        assert!(PgFacts::parse(&failed).extensions.is_empty());
    }
}
