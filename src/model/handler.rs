//! `Effect`: what running a handler does on a host, as a type (decided once, when the playbook
//! is expanded), and the script that does it.

use std::fmt;

use serde::Serialize;

use crate::config::identifier::shell_word;
use crate::model::facts::Discovery;
use crate::model::playbook::HandlerAction;

/// What must pass before a handler reloads a service; when it fails, apply puts back the
/// files its role changed for the handler.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "check", content = "command", rename_all = "snake_case")]
pub enum Check {
    /// A command of the playbook's (`nginx -t`, `sshd -t`).
    Command(String),
    /// PostgreSQL's own reading of its configuration files (`postgres -C`, which parses and
    /// validates every setting as a start would, without touching the running server): an
    /// unknown name, a value out of range or of the wrong kind fails it, with PostgreSQL's
    /// message. When the server cannot be asked where its files are (it is down), the reload
    /// decides, as before.
    PostgresConfig,
}

impl Check {
    /// Shell that fails, saying why, when the check does.
    pub fn script(&self) -> String {
        let command = match self {
            Check::Command(command) => command.clone(),
            Check::PostgresConfig => format!(
                "pg_check_config() {{\n\
                 where=$( {psql} ) || return 0\n\
                 v=${{where%%|*}}; rest=${{where#*|}}; data=${{rest%%|*}}; conf=${{rest#*|}}\n\
                 cd / && runuser -u postgres -- {bin}/postgres -D \"$data\" -c config_file=\"$conf\" -C data_directory >/dev/null\n\
                 }}\npg_check_config",
                bin = crate::model::platform::postgres_bin_dir("\"$v\""),
                psql = crate::postgres::as_postgres(
                    "-Atq -c \"SELECT current_setting('server_version_num')::int / 10000, current_setting('data_directory'), current_setting('config_file')\""
                ),
            ),
        };
        format!(
            "if ! OUT=$({command} 2>&1); then printf '%s failed, not reloading: %s\\n' {} \"$OUT\" >&2; exit 1; fi\n",
            shell_word(&self.to_string())
        )
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Command(command) => write!(f, "`{command}`"),
            Check::PostgresConfig => {
                f.write_str("PostgreSQL's check of its configuration (postgres -C)")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "effect", content = "service", rename_all = "snake_case")]
pub enum Effect {
    /// `pg_reload_conf()`, then a restart only when `pg_settings.pending_restart` says a
    /// changed setting needs one (PostgreSQL decides, tandem does not guess).
    PostgresReload,
    /// Reload sshd; where sshd is socket-activated (Ubuntu 24.04) restart `ssh.socket`, which
    /// is what re-reads the listening config.
    SshReload,
    /// `systemctl try-reload-or-restart SERVICE`.
    Reload(String),
    /// `systemctl try-restart SERVICE`.
    Restart(String),
    /// gunicorn's live release switched to itself, when a gunicorn runs: `script` (made where
    /// the app's units and paths are known) starts the idle unit and stops the live one.
    Switch {
        service: String,
        #[serde(skip)]
        script: String,
    },
}

impl Effect {
    /// The effect of `action` on `service` as a playbook's handler names them; `switch`
    /// makes the script of a `switch` (it needs the app's units and paths).
    pub fn of(service: &str, action: HandlerAction, switch: impl FnOnce() -> String) -> Effect {
        match (service, action) {
            ("postgresql", HandlerAction::Reload) => Effect::PostgresReload,
            ("ssh", HandlerAction::Reload) => Effect::SshReload,
            (s, HandlerAction::Reload) => Effect::Reload(s.to_string()),
            (s, HandlerAction::Restart) => Effect::Restart(s.to_string()),
            (s, HandlerAction::Switch) => Effect::Switch {
                service: s.to_string(),
                script: switch(),
            },
        }
    }

    pub fn service(&self) -> &str {
        match self {
            Effect::PostgresReload => "postgresql",
            Effect::SshReload => "ssh",
            Effect::Reload(s) | Effect::Restart(s) | Effect::Switch { service: s, .. } => s,
        }
    }

    /// The check this effect brings when its playbook names none: PostgreSQL reads its whole
    /// configuration before a reload (a file it refuses is kept back by the reload, and stops
    /// the next restart).
    pub fn own_check(&self) -> Option<Check> {
        match self {
            Effect::PostgresReload => Some(Check::PostgresConfig),
            _ => None,
        }
    }

    /// The handler's script: `check` (e.g. `nginx -t`) must pass first.
    pub fn script(&self, check: Option<&Check>, discovery: &Discovery) -> String {
        let mut s = String::from("set -e\n");
        if let Some(check) = check {
            s.push_str(&check.script());
        }
        match self {
            Effect::PostgresReload => {
                s.push_str(&format!(
                    "q() {{ {}; }}\n",
                    crate::postgres::as_postgres("-Atq -c \"$1\"")
                ));
                s.push_str(
                    "before=$(q 'SELECT pg_conf_load_time()')\nq 'SELECT pg_reload_conf()' >/dev/null\n\
                     i=0; while [ $i -lt 50 ] && [ \"$(q 'SELECT pg_conf_load_time()')\" = \"$before\" ]; do sleep 0.1; i=$((i+1)); done\n\
                     pending=$(q \"SELECT string_agg(name, ', ') FROM pg_settings WHERE pending_restart\")\n\
                     if [ -n \"$pending\" ]; then systemctl restart postgresql; echo \"restarted for $pending\"; else echo reloaded; fi\n",
                );
            }
            Effect::SshReload => s.push_str(crate::model::platform::ssh_reload(
                discovery.ssh_socket_activated,
            )),
            Effect::Reload(service) if service == "nginx" => s.push_str(
                &crate::model::platform::nginx_reload("try-reload-or-restart"),
            ),
            Effect::Reload(service) => s.push_str(&format!(
                "systemctl try-reload-or-restart {}\n",
                shell_word(service)
            )),
            Effect::Restart(service) => {
                s.push_str(&format!("systemctl try-restart {}\n", shell_word(service)))
            }
            Effect::Switch { script, .. } => s.push_str(script),
        }
        s
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Restart(s) | Effect::Switch { service: s, .. } => write!(f, "restart {s}"),
            other => write!(f, "reload {}", other.service()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects_and_their_scripts() {
        let socket = Discovery {
            ssh_socket_activated: true,
            ..Discovery::default()
        };
        let plain = Discovery::default();
        let ssh = Effect::of("ssh", HandlerAction::Reload, String::new);
        assert_eq!(ssh, Effect::SshReload);
        assert!(
            ssh.script(Some(&Check::Command("sshd -t".into())), &socket)
                .contains("systemctl restart ssh.socket")
        );
        assert!(
            ssh.script(None, &plain)
                .contains("try-reload-or-restart ssh")
        );
        let pg = Effect::of("postgresql", HandlerAction::Reload, String::new);
        assert!(pg.script(None, &plain).contains("pending_restart"));
        let gunicorn = Effect::of("gunicorn-shop.service", HandlerAction::Restart, String::new);
        assert_eq!(gunicorn.to_string(), "restart gunicorn-shop.service");
        // nginx: checked first, then reloaded and waited for (its old workers stop accepting).
        let nginx = Effect::of("nginx", HandlerAction::Reload, String::new)
            .script(Some(&Check::Command("nginx -t".into())), &plain);
        assert!(nginx.starts_with(
            "set -e\nif ! OUT=$(nginx -t 2>&1); then printf '%s failed, not reloading: %s\\n' '`nginx -t`' \"$OUT\" >&2; exit 1; fi\n"
        ), "{nginx}");
        assert!(
            nginx.contains("systemctl try-reload-or-restart nginx\n")
                && nginx.contains("worker process is shutting down"),
            "{nginx}"
        );
        let parsed = std::process::Command::new("sh")
            .args(["-n", "-c", &nginx])
            .status()
            .unwrap();
        assert!(parsed.success(), "{nginx}");
        assert_eq!(pg.own_check(), Some(Check::PostgresConfig));
        assert_eq!(
            Effect::of("nginx", HandlerAction::Reload, String::new).own_check(),
            None
        );
        let checked = pg.script(pg.own_check().as_ref(), &plain);
        assert!(
            checked.contains("postgres -D") && checked.contains("-C data_directory"),
            "{checked}"
        );
        // The script is valid shell.
        let parsed = std::process::Command::new("sh")
            .args(["-n", "-c", &checked])
            .status()
            .unwrap();
        assert!(parsed.success(), "{checked}");
    }
}
