//! `tandem status`: one screen per deployment, from one read-only script per server that
//! needs no secret: the lock, and by role the cluster (db), the newest backup (backup), the
//! live release and who shipped it, gunicorn and the processes, the certificate's expiry (app).

use std::fmt;

use crate::config::identifier::shell_word;
use crate::config::{Config, Role, Server};
use crate::engine::lock_status::{self, LockStatus};
use crate::engine::vars::Vars;
use crate::resource::script::STATE_DIR;

/// What one server said.
#[derive(Debug, Default, serde::Serialize)]
pub struct ServerStatus {
    pub server: String,
    pub role: String,
    pub lock: Option<LockStatus>,
    /// The live release and who shipped it (app servers).
    pub release: Option<String>,
    pub shipped_by: Option<String>,
    /// systemd units and their state (`active`, `failed`, ...): gunicorn and the processes.
    pub units: Vec<(String, String)>,
    /// Days until the served certificate expires (app servers with HTTPS).
    pub certificate_days: Option<i64>,
    /// PostgreSQL clusters (`15/main`) and whether they are online (db server).
    pub clusters: Vec<(String, bool)>,
    /// The newest backup's kind and age in seconds (backup server).
    pub newest_backup: Option<(String, i64)>,
    /// Why the server could not be read, when it could not.
    pub error: Option<String>,
}

impl ServerStatus {
    /// Everything that should run does, and the server answered.
    pub fn healthy(&self) -> bool {
        self.error.is_none()
            && self.units.iter().all(|(_, state)| state == "active")
            && self.clusters.iter().all(|(_, online)| *online)
            && self.certificate_days.is_none_or(|d| d > 0)
    }
}

/// The script for `server`.
pub fn script(config: &Config, server: &Server) -> String {
    let mut s = format!("echo @lock\n{}", lock_status::script(STATE_DIR));
    match server.role {
        Role::App => {
            let vars = Vars::for_paths(config, server);
            s.push_str(&format!(
                "echo @releases\n{}",
                crate::app::day_two::releases_script(&vars)
            ));
            // gunicorn's two units take turns: the one serving, else the service.
            s.push_str(&format!(
                "echo @units\nu={service}; systemctl is-active --quiet {bridge} && u={bridge}\n\
                 printf '%s %s\\n' \"$u\" \"$(systemctl is-active \"$u\")\"\n",
                service = shell_word(&vars.units.service),
                bridge = shell_word(&vars.units.bridge),
            ));
            let processes: Vec<String> =
                vars.processes.here.iter().map(|p| p.unit.clone()).collect();
            s.push_str(&unit_lines(&processes));
            if vars.tls.enabled {
                s.push_str(&format!(
                    "echo @certificate\nend=$(openssl x509 -enddate -noout -in {} 2>/dev/null | cut -d= -f2)\n\
                     [ -z \"$end\" ] || echo \"$(( ($(date -d \"$end\" +%s) - $(date +%s)) / 86400 ))\"\n",
                    shell_word(&vars.tls.certificate)
                ));
            }
        }
        Role::Db => {
            s.push_str(
                "echo @clusters\npg_lsclusters -h 2>/dev/null | awk '{print $1\"/\"$2, $4}'\n",
            );
            if config.cluster().is_some() {
                s.push_str(&units_script(&["etcd".to_string()]));
                // Patroni's unit is named after the PostgreSQL version, which status does not
                // discover: whichever patroni@ unit the server has.
                s.push_str(
                    "u=$(systemctl list-units --all --plain --no-legend 'patroni@*.service' 2>/dev/null | awk '{print $1; exit}')\n\
                     if [ -n \"$u\" ]; then printf '%s %s\\n' \"$u\" \"$(systemctl is-active \"$u\")\"; else echo 'patroni missing'; fi\n",
                );
            }
        }
        Role::Witness => s.push_str(&units_script(&["etcd".to_string()])),
        Role::Backup => s.push_str(&format!(
            "echo @backup\n{}",
            crate::backup::pgbackrest::info_script(&config.project)
        )),
    }
    s
}

/// Prints each unit's state under `@units`, one `unit state` line each.
fn units_script(units: &[String]) -> String {
    format!("echo @units\n{}", unit_lines(units))
}

/// One `unit state` line per unit.
fn unit_lines(units: &[String]) -> String {
    let mut s = String::new();
    for unit in units {
        s.push_str(&format!(
            "printf '%s %s\\n' {u} \"$(systemctl is-active {u})\"\n",
            u = shell_word(unit)
        ));
    }
    s
}

/// Reads `script`'s answer from `server`.
pub fn parse(config: &Config, server: &Server, text: &str) -> ServerStatus {
    let mut status = ServerStatus {
        server: server.name.clone(),
        role: server.role.as_str().to_string(),
        ..ServerStatus::default()
    };
    let mut parts: Vec<(&str, String)> = Vec::new();
    for line in text.lines() {
        match line.strip_prefix('@') {
            Some(name) => parts.push((name, String::new())),
            None => {
                if let Some((_, body)) = parts.last_mut() {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    for (name, body) in parts {
        match name {
            "lock" => status.lock = Some(lock_status::parse(&body)),
            "releases" => {
                let current = crate::app::day_two::parse_releases(&body)
                    .into_iter()
                    .find(|r| r.current);
                status.release = current.as_ref().map(|r| r.id.clone());
                status.shipped_by = current.map(|r| r.by).filter(|b| !b.is_empty());
            }
            "units" => {
                status.units = body
                    .lines()
                    .filter_map(|l| l.split_once(' '))
                    .map(|(u, s)| (u.to_string(), s.trim().to_string()))
                    .collect()
            }
            "certificate" => status.certificate_days = body.trim().parse().ok(),
            "clusters" => {
                status.clusters = body
                    .lines()
                    .filter_map(|l| l.split_once(' '))
                    // A standby is `online,recovery`.
                    .map(|(c, s)| (c.to_string(), s.trim().starts_with("online")))
                    .collect()
            }
            "backup" => {
                let (now, info) =
                    crate::backup::pgbackrest::parse_info_output(&body, &config.project);
                status.newest_backup = info
                    .ok()
                    .and_then(|i| i.latest().map(|b| (b.kind.clone(), now - b.stop)));
            }
            _ => {}
        }
    }
    status
}

impl fmt::Display for ServerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.server, self.role)?;
        if let Some(error) = &self.error {
            return write!(f, ": UNREACHABLE: {error}");
        }
        let mut parts: Vec<String> = Vec::new();
        for (cluster, online) in &self.clusters {
            parts.push(format!(
                "PostgreSQL {cluster} {}",
                if *online { "online" } else { "DOWN" }
            ));
        }
        if let Some(release) = &self.release {
            parts.push(format!(
                "release {release}{}",
                self.shipped_by
                    .as_deref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default()
            ));
        } else if self.role == "app" {
            parts.push("no release".into());
        }
        for (unit, state) in &self.units {
            parts.push(match state.as_str() {
                "active" => format!("{unit} active"),
                other => format!("{unit} {}", other.to_uppercase()),
            });
        }
        if let Some(days) = self.certificate_days {
            parts.push(format!("certificate expires in {days} day(s)"));
        }
        if self.role == "backup" {
            parts.push(match &self.newest_backup {
                Some((kind, age)) => format!(
                    "newest backup: {kind}, {} ago",
                    crate::backup::pgbackrest::human_age(*age)
                ),
                None => "no backup".into(),
            });
        }
        if let Some(lock) = &self.lock {
            parts.push(match (&lock.owner, lock.held) {
                (_, false) => "lock free".into(),
                (owner, true) => format!(
                    "lock held by {}",
                    owner.as_deref().unwrap_or("an unknown run")
                ),
            });
        }
        write!(f, ": {}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reads_its_part_and_a_down_unit_is_unhealthy() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::testing::shop(dir.path());
        let app = &config.servers[1];
        let script = script(&config, app);
        crate::resource::table::assert_shell_syntax(&script, "status");
        let answer = "@lock\nnow=100\nlock=free\nwork=idle\n@releases\ncurrent=r2\n\
                      release=r1\tabc\tops@a\nrelease=r2\tdef\tci@b\n@units\n\
                      gunicorn-shop.service active\n@certificate\n42\n";
        let status = parse(&config, app, answer);
        assert_eq!(status.release.as_deref(), Some("r2"));
        assert_eq!(status.shipped_by.as_deref(), Some("ci@b"));
        assert_eq!(status.certificate_days, Some(42));
        assert!(status.healthy(), "{status:?}");
        assert_eq!(
            status.to_string(),
            "app1 (app): release r2 by ci@b; gunicorn-shop.service active; certificate expires in 42 day(s); lock free"
        );
        let down = parse(
            &config,
            app,
            &answer.replace(
                "gunicorn-shop.service active",
                "gunicorn-shop.service failed",
            ),
        );
        assert!(!down.healthy());
        assert!(down.to_string().contains("gunicorn-shop.service FAILED"));
        let db = parse(
            &config,
            &config.servers[0],
            "@lock\nlock=held\nowner=ops@x run 7\nsince=90\nnow=100\nwork=idle\n@clusters\n15/main down\n",
        );
        assert!(!db.healthy());
        assert_eq!(
            db.to_string(),
            "db (db): PostgreSQL 15/main DOWN; lock held by ops@x run 7"
        );
    }
}
