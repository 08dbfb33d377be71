//! The app wing's template variables: the background processes a server runs and the broker
//! they reach.

use serde::Serialize;

use crate::config::{Config, Server};

/// Redis for the background processes (`broker:`).
#[derive(Clone, Debug, Serialize)]
pub struct BrokerVars {
    pub enabled: bool,
    /// This server runs Redis.
    pub here: bool,
    pub name: String,
    pub ip: String,
    pub port: u16,
}

impl BrokerVars {
    pub fn of(config: &Config, server: &Server) -> BrokerVars {
        let broker = config.broker_server();
        BrokerVars {
            enabled: broker.is_some(),
            here: broker.is_some_and(|b| b.name == server.name),
            name: broker.map(|b| b.name.clone()).unwrap_or_default(),
            ip: broker
                .map(|b| b.internal_ip.to_string())
                .unwrap_or_default(),
            port: crate::config::processes::REDIS_PORT,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ProcessUnit {
    pub name: String,
    /// `<project>-<name>.service`.
    pub unit: String,
    /// The command's words, each quoted for systemd's `ExecStart=`.
    pub exec: String,
    pub stop_timeout: u32,
}

/// Background processes (`processes:`) on an app server: the ones it runs, and the config's
/// others, whose units it must not have (a singleton elsewhere, a process moved away).
#[derive(Clone, Debug, Serialize)]
pub struct ProcessVars {
    pub here: Vec<ProcessUnit>,
    /// Unit names of the config's processes that do not run here.
    pub elsewhere: Vec<String>,
}

impl ProcessVars {
    pub fn of(config: &Config, server: &Server) -> ProcessVars {
        let unit = |p: &crate::config::Process| format!("{}-{}.service", config.project, p.name);
        let (here, elsewhere): (Vec<_>, Vec<_>) = config
            .processes
            .iter()
            .partition(|p| p.runs_on().contains(&server.name));
        ProcessVars {
            here: here
                .into_iter()
                .map(|p| ProcessUnit {
                    name: p.name.clone(),
                    unit: unit(p),
                    exec: p
                        .command
                        .iter()
                        .map(|w| crate::config::processes::systemd_word(w))
                        .collect::<Vec<_>>()
                        .join(" "),
                    stop_timeout: p.stop_timeout,
                })
                .collect(),
            elsewhere: elsewhere.into_iter().map(unit).collect(),
        }
    }

    /// The units that run here, space-separated and shell-quoted (for `systemctl`).
    pub fn shell_units(&self) -> String {
        self.here
            .iter()
            .map(|p| crate::config::identifier::shell_word(&p.unit))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
