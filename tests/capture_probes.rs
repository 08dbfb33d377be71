//! A tool, not a check: re-captures the probe answers under `tests/fixtures/probes/` from real
//! lab servers (Debian 12 and 13; fresh, converged, drifted by hand), which the host-free plan
//! tests (`tests/plan_replay.rs`) replay. Run it when the probe changes:
//!
//! `cargo test --test capture_probes -- --ignored`

mod support;

use std::fs;
use std::path::Path;

use support::lab::{Lab, Suite};
use support::scenario::{Scenario, assert_ok};

#[test]
#[ignore = "a tool: rewrites tests/fixtures/probes from lab servers"]
fn capture_probe_fixtures() {
    let lab = Lab::get().expect("the lab (root) is needed to capture probes");
    std::thread::scope(|scope| {
        for suite in [Suite::Bookworm, Suite::Trixie] {
            let lab = lab.clone();
            scope.spawn(move || capture(lab, suite));
        }
    });
}

fn capture(lab: Lab, suite: Suite) {
    let s = Scenario::new(lab, suite);
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/probes")
        .join(suite.name());
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();

    // The config with the operator's key inline, so replaying needs no key file.
    let key = fs::read_to_string(s.lab.key.with_extension("pub")).unwrap();
    let config = fs::read_to_string(s.config_path()).unwrap();
    let line = config
        .lines()
        .find(|l| l.contains("authorized_key_files"))
        .unwrap()
        .to_string();
    let config = config.replace(&line, &format!("  authorized_keys: [\"{}\"]", key.trim()));
    fs::write(s.config_path(), &config).unwrap();
    fs::write(out.join("tandem.yml"), &config).unwrap();

    let plan_into = |state: &str, extra: &[&str]| {
        let mut args = vec!["plan"];
        args.extend_from_slice(extra);
        let plan = s
            .tandem(&args)
            .env("TANDEM_CAPTURE_PROBES", out.join(state))
            .output()
            .unwrap();
        assert_ok(&format!("plan ({state})"), &plan);
    };
    plan_into("fresh", &["--bootstrap-user", "root"]);
    assert_ok("apply", &s.apply_fresh());
    plan_into("converged", &[]);
    // By hand: what the fault suite does, plus a drifted file mode and a stopped gunicorn.
    s.sudo_ok(
        &s.db,
        "for f in /etc/postgresql/*/main/pg_hba.conf; do echo 'host all all 0.0.0.0/0 trust' >>\"$f\"; done; \
         systemctl reload postgresql; ufw allow 5432 >/dev/null",
    );
    s.sudo_ok(
        &s.app,
        "echo '# edited by hand' >>/etc/nginx/sites-available/timesheet; \
         chmod 0640 /etc/systemd/system/gunicorn-timesheet.socket; \
         systemctl stop gunicorn-timesheet.socket gunicorn-timesheet.service",
    );
    plan_into("drifted", &[]);
}
