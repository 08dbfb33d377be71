//! The `processes` step: each background process of `processes:` as a systemd service on the
//! app servers it runs on, started from the current release with the env file; its unit
//! removed from the others (a singleton that runs elsewhere, a process moved away).
//!
//! The units are `PartOf=` gunicorn's service, so a changed env file or unit, which restarts
//! gunicorn, restarts them too; a release stops them before `current` moves and starts them on
//! the new code after (`resource::release::switch_function`). Before the first release there
//! is no code to run: `ConditionPathExists=` keeps the unit from starting until there is.

use crate::desired::{FileSpec, Op, Secrecy};
use crate::mode::Mode;
use crate::templates::Templates;
use crate::vars::Vars;

pub fn ops(vars: &Vars, t: &mut Templates) -> anyhow::Result<Vec<Op>> {
    let mut ops = Vec::new();
    for process in &vars.processes.here {
        ops.push(Op::File(FileSpec {
            path: format!("/etc/systemd/system/{}", process.unit),
            content: t.render_item("systemd/process.service", vars, "process", process)?,
            mode: Mode(0o644),
            owner: "root".into(),
            group: "root".into(),
            secret: Secrecy::Public,
            validate: None,
        }));
        ops.push(Op::Service {
            name: process.unit.clone(),
            enabled: true,
            running: true,
        });
    }
    for unit in &vars.processes.elsewhere {
        ops.push(Op::Service {
            name: unit.clone(),
            enabled: false,
            running: false,
        });
        ops.push(Op::Absent {
            path: format!("/etc/systemd/system/{unit}"),
        });
    }
    Ok(ops)
}
