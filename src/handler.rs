//! `Effect`: what running a handler does on a host, as a type (decided once, when the playbook
//! is expanded), and the script that does it.

use std::fmt;

use serde::Serialize;

use crate::facts::Discovery;
use crate::identifier::shell_word;
use crate::playbook::HandlerAction;

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
}

impl Effect {
    /// The effect of `action` on `service` as a playbook's handler names them.
    pub fn of(service: &str, action: HandlerAction) -> Effect {
        match (service, action) {
            ("postgresql", HandlerAction::Reload) => Effect::PostgresReload,
            ("ssh", HandlerAction::Reload) => Effect::SshReload,
            (s, HandlerAction::Reload) => Effect::Reload(s.to_string()),
            (s, HandlerAction::Restart) => Effect::Restart(s.to_string()),
        }
    }

    pub fn service(&self) -> &str {
        match self {
            Effect::PostgresReload => "postgresql",
            Effect::SshReload => "ssh",
            Effect::Reload(s) | Effect::Restart(s) => s,
        }
    }

    /// The handler's script: `check` (e.g. `nginx -t`) must pass first.
    pub fn script(&self, check: Option<&str>, discovery: &Discovery) -> String {
        let mut s = String::from("set -e\n");
        if let Some(check) = check {
            s.push_str(&format!(
                "if ! OUT=$({check} 2>&1); then echo \"`{check}` failed, not reloading: $OUT\" >&2; exit 1; fi\n"
            ));
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
            Effect::SshReload if discovery.ssh_socket_activated => {
                s.push_str("systemctl daemon-reload\nsystemctl restart ssh.socket\n")
            }
            Effect::SshReload => s.push_str("systemctl try-reload-or-restart ssh\n"),
            Effect::Reload(service) => s.push_str(&format!(
                "systemctl try-reload-or-restart {}\n",
                shell_word(service)
            )),
            Effect::Restart(service) => {
                s.push_str(&format!("systemctl try-restart {}\n", shell_word(service)))
            }
        }
        s
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Restart(s) => write!(f, "restart {s}"),
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
        let ssh = Effect::of("ssh", HandlerAction::Reload);
        assert_eq!(ssh, Effect::SshReload);
        assert!(
            ssh.script(Some("sshd -t"), &socket)
                .contains("systemctl restart ssh.socket")
        );
        assert!(
            ssh.script(None, &plain)
                .contains("try-reload-or-restart ssh")
        );
        let pg = Effect::of("postgresql", HandlerAction::Reload);
        assert!(pg.script(None, &plain).contains("pending_restart"));
        let gunicorn = Effect::of("gunicorn-shop.service", HandlerAction::Restart);
        assert_eq!(gunicorn.to_string(), "restart gunicorn-shop.service");
        assert_eq!(
            Effect::of("nginx", HandlerAction::Reload).script(Some("nginx -t"), &plain),
            "set -e\nif ! OUT=$(nginx -t 2>&1); then echo \"`nginx -t` failed, not reloading: $OUT\" >&2; exit 1; fi\n\
             systemctl try-reload-or-restart nginx\n"
        );
    }
}
