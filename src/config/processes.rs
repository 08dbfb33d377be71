//! `processes:` and `broker:` in tandem.yml: background workers (Celery, RQ, ...) as systemd
//! services on the app servers, and the Redis they take their work from.

use serde::{Deserialize, Serialize};

use super::{PasswordSource, Role, Server, Validator};
use crate::config::yaml::Spanned;

/// How long a process gets between SIGTERM and SIGKILL unless `stop_timeout:` says otherwise:
/// a Celery worker finishes its running tasks in that time (warm shutdown).
pub const STOP_TIMEOUT: u32 = 60;

/// Redis's port.
pub const REDIS_PORT: u16 = 6379;

#[derive(Clone, Debug, Serialize)]
pub struct Process {
    /// A safe name: the unit is `<project>-<name>.service`.
    pub name: String,
    /// The command's words (run from the current release's venv, in its directory).
    pub command: Vec<String>,
    /// The app servers it runs on (all of them unless `servers:` names some); a singleton runs
    /// on the first of them only.
    pub servers: Vec<String>,
    pub singleton: bool,
    pub stop_timeout: u32,
    /// Database connections it may hold at once (Celery: its concurrency), for the budget.
    pub db_connections: u32,
}

impl Process {
    /// The servers it actually runs on.
    pub fn runs_on(&self) -> &[String] {
        match self.singleton {
            true => &self.servers[..self.servers.len().min(1)],
            false => &self.servers,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Broker {
    /// The server Redis runs on (the db server unless `server:` names another).
    pub server: String,
    pub password: PasswordSource,
}

pub(super) mod raw {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Process {
        pub name: Spanned<String>,
        pub command: Spanned<String>,
        pub servers: Option<Spanned<Vec<Spanned<String>>>>,
        pub singleton: Option<bool>,
        pub stop_timeout: Option<Spanned<u32>>,
        pub db_connections: Option<Spanned<u32>>,
    }

    /// Redis, the one broker tandem installs.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Broker {
        pub server: Option<Spanned<String>>,
        pub password: Spanned<PasswordSource>,
    }
}

impl Validator<'_> {
    pub(super) fn processes(&mut self, raw: Vec<raw::Process>, servers: &[Server]) -> Vec<Process> {
        let apps: Vec<&str> = servers
            .iter()
            .filter(|s| s.role == Role::App)
            .map(|s| s.name.as_str())
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (i, p) in raw.into_iter().enumerate() {
            let at = |f: &str| format!("processes[{i}].{f}");
            let name = self.safe_name(&p.name, &at("name"));
            if name == "gunicorn" || name == "web" {
                self.error(
                    &p.name,
                    &at("name"),
                    format!("`{name}` is the web server's own name"),
                    "name the process after its job, e.g. `worker` or `beat`",
                );
            }
            if !seen.insert(name.clone()) {
                self.error(
                    &p.name,
                    &at("name"),
                    format!("two processes are named `{name}`"),
                    "give every process its own name",
                );
            }
            let command = match shlex::split(&p.command.value) {
                Some(words)
                    if !words.is_empty()
                        && words.iter().all(|w| !w.chars().any(char::is_control))
                        && program_of(&words).is_some() =>
                {
                    words
                }
                Some(words) if !words.is_empty() && program_of(&words).is_none() => {
                    // The unit starts it through `env`, which, given no program, prints the
                    // whole environment (the secrets of the env file) to the journal, every 2 s.
                    self.error(
                        &p.command,
                        &at("command"),
                        "no program to run: only variable assignments, or a word starting with `-` where the program belongs"
                            .into(),
                        "start the command with the program, e.g. `celery -A proj worker`; `NAME=value celery ...` sets a variable for it",
                    );
                    words
                }
                _ => {
                    self.error(
                        &p.command,
                        &at("command"),
                        "not a command line: empty, an unclosed quote, or a control character"
                            .into(),
                        "write the command as in a shell, e.g. `celery -A proj worker -l info`; it runs from the release's venv",
                    );
                    Vec::new()
                }
            };
            let on: Vec<String> = match &p.servers {
                None => apps.iter().map(|s| s.to_string()).collect(),
                Some(list) => {
                    if list.value.is_empty() {
                        self.error(
                            list,
                            &at("servers"),
                            "no servers: the process would run nowhere".into(),
                            "name app servers, or leave `servers:` out for all of them",
                        );
                    }
                    for s in &list.value {
                        if !apps.contains(&s.value.as_str()) {
                            self.error(
                                s,
                                &at("servers"),
                                format!("`{}` is not an app server", s.value),
                                &format!(
                                    "processes run from the release on app servers: {}",
                                    apps.join(", ")
                                ),
                            );
                        }
                    }
                    list.value.iter().map(|s| s.value.clone()).collect()
                }
            };
            let stop_timeout = p.stop_timeout.as_ref().map_or(STOP_TIMEOUT, |t| t.value);
            if let Some(t) = &p.stop_timeout
                && !(1..=3600).contains(&t.value)
            {
                self.error(
                    t,
                    &at("stop_timeout"),
                    format!("{} seconds", t.value),
                    "write the seconds running tasks may take to finish, 1 to 3600",
                );
            }
            out.push(Process {
                name,
                command,
                servers: on,
                singleton: p.singleton.unwrap_or(false),
                stop_timeout,
                db_connections: p.db_connections.as_ref().map_or(4, |c| c.value),
            });
        }
        out
    }

    pub(super) fn broker(
        &mut self,
        raw: Option<Spanned<raw::Broker>>,
        servers: &[Server],
    ) -> Option<Broker> {
        let raw = raw?;
        let server = match &raw.value.server {
            Some(name) => {
                if !servers.iter().any(|s| s.name == name.value) {
                    self.error(
                        name,
                        "broker.server",
                        format!("no server is named `{}`", name.value),
                        "name one of the servers (the db server is the default)",
                    );
                }
                name.value.clone()
            }
            None => servers
                .iter()
                .find(|s| s.role == Role::Db)
                .map(|s| s.name.clone())
                .unwrap_or_default(),
        };
        self.secret_source(&raw.value.password, "broker.password");
        Some(Broker {
            server,
            password: raw.value.password.value.clone(),
        })
    }
}

/// `word` as one word of a systemd `ExecStart=` line: double-quoted, with systemd's specifiers
/// (`%`) and variable references (`$`) escaped, so it reaches the process exactly as written.
pub fn systemd_word(word: &str) -> String {
    let mut out = String::from("\"");
    for c in word.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The program a process's command runs: its first word after `NAME=value` assignments, when
/// there is one that `env` would run (not an option of env's own).
fn program_of(words: &[String]) -> Option<&str> {
    let is_assignment = |w: &str| {
        w.split_once('=')
            .is_some_and(|(name, _)| crate::config::identifier::is_env_name(name))
    };
    words
        .iter()
        .map(String::as_str)
        .find(|w| !is_assignment(w))
        .filter(|w| !w.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::MINIMAL;

    /// What `check` says about MINIMAL (plus app2) with `yaml` appended; and the config.
    fn load(yaml: &str) -> Result<crate::config::Config, String> {
        let dir = tempfile::tempdir().unwrap();
        crate::config::testing::shop(dir.path());
        let text = MINIMAL.replace(
            "domains:",
            "  - {name: app2, role: app, ssh: app2, fqdn: app2.example.com, internal_ip: 10.0.0.4}\ndomains:",
        ) + yaml
            + "django: {source: ., wsgi_module: shop.wsgi, settings_module: shop.settings}\n";
        crate::config::parse(&dir.path().join("tandem.yml"), &text)
            .map(|l| l.config)
            .map_err(|d| d.to_string())
    }

    #[test]
    fn processes_run_where_they_are_asked_and_singletons_once() {
        let config = load(
            "processes:\n  - {name: worker, command: \"celery -A shop worker --hostname 'w@%h'\"}\n  - {name: beat, command: celery -A shop beat, singleton: true, servers: [app2, app1]}\nbroker: {password: {env: R}}\n",
        )
        .unwrap();
        let worker = &config.processes[0];
        assert_eq!(
            worker.command,
            ["celery", "-A", "shop", "worker", "--hostname", "w@%h"]
        );
        assert_eq!(worker.runs_on(), ["app1", "app2"]);
        assert_eq!(config.processes[1].runs_on(), ["app2"]);
        assert_eq!(config.broker_server().unwrap().name, "db");
        // Budget: 2 x 3 gunicorn workers, worker 4 x 2 servers, beat 4 x 1.
        assert_eq!(config.demand().connections(), 6 + 8 + 4);
    }

    #[test]
    fn each_mistake_is_named_with_its_fix() {
        for (yaml, says) in [
            (
                "processes:\n  - {name: worker, command: ''}\n",
                "processes[0].command",
            ),
            (
                "processes:\n  - {name: worker, command: \"celery 'unclosed\"}\n",
                "not a command line",
            ),
            (
                "processes:\n  - {name: worker, command: FOO=bar}\n",
                "no program to run",
            ),
            (
                "processes:\n  - {name: worker, command: \"A=1 B=2\"}\n",
                "no program to run",
            ),
            (
                "processes:\n  - {name: worker, command: -i}\n",
                "no program to run",
            ),
            (
                "processes:\n  - {name: worker, command: \"FOO=bar -u X\"}\n",
                "no program to run",
            ),
            (
                "processes:\n  - {name: Worker, command: celery}\n",
                "processes[0].name",
            ),
            (
                "processes:\n  - {name: gunicorn, command: celery}\n",
                "web server's own name",
            ),
            (
                "processes:\n  - {name: w, command: celery}\n  - {name: w, command: rq}\n",
                "two processes are named `w`",
            ),
            (
                "processes:\n  - {name: w, command: celery, servers: [db]}\n",
                "`db` is not an app server",
            ),
            (
                "processes:\n  - {name: w, command: celery, servers: []}\n",
                "would run nowhere",
            ),
            (
                "processes:\n  - {name: w, command: celery, stop_timeout: 0}\n",
                "processes[0].stop_timeout",
            ),
            (
                "broker: {server: nowhere, password: {env: R}}\n",
                "no server is named `nowhere`",
            ),
            (
                "broker: {password: {env: 'not a name'}}\n",
                "broker.password",
            ),
        ] {
            let err = load(yaml).map(|_| ()).unwrap_err();
            assert!(err.contains(says), "{yaml}: {err}");
        }
    }

    #[test]
    fn systemd_words_keep_what_was_written() {
        assert_eq!(systemd_word("celery"), "\"celery\"");
        assert_eq!(systemd_word("a b"), "\"a b\"");
        assert_eq!(systemd_word("50%"), "\"50%%\"");
        assert_eq!(systemd_word("$HOME"), "\"$$HOME\"");
        assert_eq!(systemd_word("x\"y\\z"), "\"x\\\"y\\\\z\"");
    }
}
