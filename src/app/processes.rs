//! The `processes` step: each background process of `processes:` as a systemd service on the
//! app servers it runs on, started from the current release with the env file; its unit
//! removed from the others (a singleton that runs elsewhere, a process moved away).
//!
//! The units are `PartOf=` gunicorn's service (stopped with it); every switch of gunicorn's
//! units (a release, a changed env file or unit, `tandem restart`) stops them before `current`
//! moves and starts them on the new code after (`resource::release::switch_function`). Before the first release there
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

    /// A release `id` whose rollback script ran under sh with a `systemctl` that logs each
    /// call and where `current` pointed at that moment; the log, and where `current` ends.
    fn rollback_in(
        dir: &std::path::Path,
        config: &crate::config::Config,
        id: &str,
        active: &str,
        fail: &str,
    ) -> (String, String, bool) {
        // `is-active` answers for the unit named in $ACTIVE only.
        let bin = crate::resource::table::fake_systemctl(
            dir,
            "echo \"systemctl $* -> $(basename \"$(readlink \"$ROOT/current\")\")\" >>\"$LOG\"\n\
             [ \"$1\" != restart ] || [ \"$2\" != \"$FAIL\" ] || exit 1\n\
             [ \"$1\" != is-active ] || [ \"$3\" = \"$ACTIVE\" ]\n",
        );
        let mut vars = vars(config, "app1");
        let root = dir.join("srv");
        vars.paths.root = root.display().to_string();
        std::fs::create_dir_all(root.join("releases").join(id)).unwrap();
        std::fs::create_dir_all(root.join("releases/r0")).unwrap();
        std::os::unix::fs::symlink(root.join("releases/r0"), root.join("current")).unwrap();
        let script = crate::resource::release::rollback_script(&vars, id);
        let log = dir.join("log");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(dir)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("LOG", &log)
            .env("ROOT", &root)
            .env("ACTIVE", active)
            .env("FAIL", fail)
            .output()
            .unwrap();
        let current = std::fs::read_link(root.join("current")).unwrap();
        if out.status.success() {
            // The idle unit's link agrees with `current` once the switch is done.
            assert_eq!(std::fs::read_link(root.join("next")).unwrap(), current);
        } else {
            assert!(
                std::fs::symlink_metadata(root.join("previous")).is_err(),
                "a switch that moved nothing left a previous link"
            );
        }
        (
            std::fs::read_to_string(log).unwrap(),
            current.file_name().unwrap().to_string_lossy().into_owned(),
            out.status.success(),
        )
    }

    /// The calls of a rollback to r1 while `active` serves r0, in order, and a finder of
    /// their positions.
    fn rollback_calls(active: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let (log, current, ok) = rollback_in(dir.path(), &config, "r1", active, "");
        assert!(ok && current == "r1", "{log}");
        log.lines()
            .filter(|l| {
                !l.starts_with("systemctl is-active")
                    && !l.starts_with("systemctl reset-failed")
                    && !l.starts_with("systemctl show")
            })
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_rollback_stops_the_processes_before_current_moves() {
        // The service serves: the bridge starts on r1 before anything stops (one Django
        // start), the processes stop while `current` is r0, the service stops once it moved.
        assert_eq!(
            rollback_calls("gunicorn-shop.service"),
            [
                "systemctl start gunicorn-shop.socket -> r0",
                "systemctl restart gunicorn-shop-bridge.service -> r0",
                "systemctl stop shop-worker.service shop-beat.service -> r0",
                "systemctl stop --no-block gunicorn-shop.service -> r1",
                "systemctl start shop-worker.service shop-beat.service -> r1",
            ]
        );
        // The bridge serves: the service runs `current`, so the processes stop first, then
        // the service starts on r1 and the bridge stops. The units take turns.
        assert_eq!(
            rollback_calls("gunicorn-shop-bridge.service"),
            [
                "systemctl start gunicorn-shop.socket -> r0",
                "systemctl stop shop-worker.service shop-beat.service -> r0",
                "systemctl restart gunicorn-shop.service -> r1",
                "systemctl stop --no-block gunicorn-shop-bridge.service -> r1",
                "systemctl start shop-worker.service shop-beat.service -> r1",
            ]
        );
        // Nothing serves (socket activation not triggered yet): the service starts.
        assert!(
            rollback_calls("")
                .iter()
                .any(|c| c == "systemctl restart gunicorn-shop.service -> r1")
        );
    }

    /// A release whose gunicorn does not start moves nothing: the live unit keeps serving the
    /// live release, whichever unit it is, and the processes run on it again.
    #[test]
    fn a_release_that_does_not_start_moves_nothing() {
        for (active, idle) in [
            ("gunicorn-shop.service", "gunicorn-shop-bridge.service"),
            ("gunicorn-shop-bridge.service", "gunicorn-shop.service"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let config = config(dir.path());
            let (log, current, ok) = rollback_in(dir.path(), &config, "r1", active, idle);
            assert!(!ok, "{log}");
            assert_eq!(current, "r0", "{log}");
            assert!(!log.contains(&format!("stop {active}")), "{log}");
            if idle == "gunicorn-shop.service" {
                // Restart=on-failure would start it again on whatever `current` names.
                assert!(
                    log.contains("systemctl stop gunicorn-shop.service -> r1"),
                    "{log}"
                );
                assert!(
                    log.ends_with("systemctl start shop-worker.service shop-beat.service -> r0\n"),
                    "{log}"
                );
            }
        }
    }

    /// A release name read from a broken-into server is a word, never shell.
    #[test]
    fn a_hostile_release_name_is_only_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let id = "r1'$(touch pwned)\"`touch pwned2` *";
        let (_, current, _) = rollback_in(dir.path(), &config, id, "gunicorn-shop.service", "");
        assert_eq!(current, id);
        assert!(!dir.path().join("pwned").exists() && !dir.path().join("pwned2").exists());
    }
}
