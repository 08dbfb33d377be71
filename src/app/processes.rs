//! The `processes` step: each background process of `processes:` as a systemd service on the
//! app servers it runs on, started from the current release with the env file; its unit
//! removed from the others (a singleton that runs elsewhere, a process moved away).
//!
//! The units are `PartOf=` gunicorn's service, so a changed env file or unit, which restarts
//! gunicorn, restarts them too; a release stops them before `current` moves and starts them on
//! the new code after (`resource::release::switch_function`). Before the first release there
//! is no code to run: `ConditionPathExists=` keeps the unit from starting until there is.

use crate::engine::templates::Templates;
use crate::engine::vars::Vars;
use crate::model::desired::{FileSpec, Op};

pub fn ops(vars: &Vars, t: &mut Templates) -> anyhow::Result<Vec<Op>> {
    let mut ops = Vec::new();
    for process in &vars.processes.here {
        ops.push(Op::File(FileSpec::new(
            format!("/etc/systemd/system/{}", process.unit),
            t.render_item("systemd/process.service", vars, "process", process)?,
            0o644,
            "root",
        )));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::vars::HostFacts;

    fn config(dir: &std::path::Path) -> crate::config::Config {
        crate::config::testing::shop(dir);
        let text = crate::config::testing::MINIMAL.replace(
            "domains:",
            "  - {name: app2, role: app, ssh: app2, fqdn: app2.example.com, internal_ip: 10.0.0.4}\ndomains:",
        ) + "processes:\n  - {name: worker, command: celery -A shop worker}\n  - {name: beat, command: celery -A shop beat, singleton: true}\n"
            + "django: {source: ., wsgi_module: shop.wsgi, settings_module: shop.settings}\n";
        crate::config::parse(&dir.join("tandem.yml"), &text)
            .unwrap()
            .config
    }

    fn vars(config: &crate::config::Config, server: &str) -> Vars {
        let server = config.servers.iter().find(|s| s.name == server).unwrap();
        Vars::new(
            config,
            server,
            &HostFacts::assumed(),
            crate::engine::vars::Secrets::redacted(config),
        )
    }

    #[test]
    fn a_singleton_runs_on_the_first_server_and_is_removed_from_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut t = Templates::new(crate::engine::assets::Assets::builtin());
        let summary = |server: &str, t: &mut Templates| -> Vec<String> {
            ops(&vars(&config, server), t)
                .unwrap()
                .iter()
                .map(|op| match op {
                    Op::File(f) => format!("file {}", f.path),
                    Op::Service { name, enabled, .. } => format!("service {name} {enabled}"),
                    Op::Absent { path } => format!("absent {path}"),
                    other => format!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(
            summary("app1", &mut t),
            [
                "file /etc/systemd/system/shop-worker.service",
                "service shop-worker.service true",
                "file /etc/systemd/system/shop-beat.service",
                "service shop-beat.service true",
            ]
        );
        assert_eq!(
            summary("app2", &mut t),
            [
                "file /etc/systemd/system/shop-worker.service",
                "service shop-worker.service true",
                "service shop-beat.service false",
                "absent /etc/systemd/system/shop-beat.service",
            ]
        );
        let unit = t
            .render_item(
                "systemd/process.service",
                &vars(&config, "app1"),
                "process",
                &vars(&config, "app1").processes.here[0],
            )
            .unwrap();
        assert!(
            unit.contains("ExecStart=/usr/bin/env \"celery\" \"-A\" \"shop\" \"worker\""),
            "{unit}"
        );
        assert!(unit.contains("PartOf=gunicorn-shop.service") && unit.contains("KillMode=mixed"));
    }

    #[test]
    fn a_rollback_stops_the_processes_before_current_moves() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let script = crate::resource::release::rollback_script(&vars(&config, "app1"), "r1");
        crate::resource::table::assert_shell_syntax(&script, "rollback");
        let stop = script
            .find("systemctl stop shop-worker.service shop-beat.service")
            .unwrap();
        let switch = script.find("ln -sfn").unwrap();
        let start = script
            .find("systemctl start shop-worker.service shop-beat.service")
            .unwrap();
        assert!(stop < switch && switch < start, "{script}");
    }
}
