//! A tool, not a check: re-captures the probe answers under `tests/fixtures/probes/` from real
//! lab servers (Debian 12 and 13; fresh, converged, drifted by hand), which the host-free plan
//! tests (`tests/plan_replay.rs`) replay. Run it when the probe changes:
//!
//! `cargo test --test capture_probes -- --ignored`
//!
//! Three layouts: the seed's db + app (HTTPS off), per Debian release; the full one on
//! Debian 12 (`full/`): a backup server, HTTPS from the operator's certificate, a background
//! process and its broker; and ACME on Debian 12 (`acme/`): two app servers, the issuer and
//! its peer, with a certificate from a real ACME CA (pebble on the outsider).

mod support;

use std::fs;
use std::path::Path;

use support::lab::{Lab, Suite};
use support::scenario::{Scenario, assert_ok};

#[test]
#[ignore = "a tool: rewrites tests/fixtures/probes from lab servers"]
fn capture_probe_fixtures() {
    let lab = Lab::get().expect("the lab (root) is needed to capture probes");
    // TANDEM_CAPTURE_ONLY=full (or acme) captures that layout alone.
    match std::env::var("TANDEM_CAPTURE_ONLY").as_deref() {
        Ok("full") => return capture_full(lab),
        Ok("acme") => return capture_acme(lab),
        _ => {}
    }
    std::thread::scope(|scope| {
        for suite in [Suite::Bookworm, Suite::Trixie] {
            let lab = lab.clone();
            scope.spawn(move || capture(lab, suite));
        }
        let full = lab.clone();
        scope.spawn(move || capture_full(full));
        scope.spawn(move || capture_acme(lab));
    });
}

/// ACME: two app servers (app1 issues, app2 is its peer) and a certificate from pebble, the
/// apex resolving to the peer so its challenge is passed on to the issuer.
fn capture_acme(lab: Lab) {
    let s = Scenario::with_apps(
        lab,
        Suite::Bookworm,
        support::scenario::Example::Timesheet,
        2,
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/probes/acme");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();
    let acme = support::acme::start(
        &s.outsider,
        &[
            ("timesheet.lab.test", &s.more_apps[0].ip),
            ("www.timesheet.lab.test", &s.app.ip),
        ],
    );
    fs::write(s.dir.path().join("ca.pem"), &acme.ca_pem).unwrap();
    fs::write(out.join("ca.pem"), &acme.ca_pem).unwrap();
    s.set_domains("[timesheet.lab.test, www.timesheet.lab.test]");
    s.set_tls(&format!(
        "tls:\n  ca_certificate: ca.pem\n  acme:\n    email: ops@lab.test\n    directory: {}\n    renew_days: 30\n",
        acme.directory
    ));
    write_config_with_inline_key(&s, &out);
    fresh_then_converged(&s, &out);
    // By hand: the issuer's renewal timer off, the peer's certificate gone.
    s.sudo_ok(
        &s.app,
        "systemctl disable --now tandem-acme-timesheet.timer",
    );
    s.sudo_ok(&s.more_apps[0], "rm /etc/ssl/tandem/timesheet.crt");
    plan_into(&s, &out, "drifted", &[]);
}

/// The full layout: backups, HTTPS from files (a throwaway CA and site key made here, kept
/// beside the fixtures so the replay can read them), a process and the broker.
fn capture_full(lab: Lab) {
    let s = Scenario::with_backup(lab, Suite::Bookworm, support::scenario::Example::Timesheet);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/probes/full");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();
    let dir = s.dir.path();
    support::scenario::operator_certificate(dir, "fixture-ca", 3650, 3650);
    for file in ["ca.pem", "site.crt", "site.key"] {
        fs::copy(dir.join(file), out.join(file)).unwrap();
    }
    s.set_tls(
        "tls:\n  mode: files\n  ca_certificate: ca.pem\n  certificate: {file: site.crt}\n  key: {file: site.key}\n",
    );
    s.add_config(
        "processes:\n  - {name: ticker, command: sleep infinity}\nbroker: {password: {env: TANDEM_REDIS_PASSWORD}}\n",
    );
    write_config_with_inline_key(&s, &out);
    fresh_then_converged(&s, &out);
    // By hand: the process stopped, the broker's config edited, the backup timer off.
    s.sudo_ok(&s.app, "systemctl stop timesheet-ticker.service");
    s.sudo_ok(&s.db, "echo '# edited by hand' >>/etc/redis/tandem.conf");
    s.sudo_ok(
        s.backup.as_ref().unwrap(),
        "systemctl disable --now tandem-backup-timesheet.timer",
    );
    plan_into(&s, &out, "drifted", &[]);
}

/// Writes the scenario's config with the operator's key inline (replaying needs no key file),
/// also as `out/tandem.yml`.
fn write_config_with_inline_key(s: &Scenario, out: &Path) {
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
}

fn capture(lab: Lab, suite: Suite) {
    let s = Scenario::new(lab, suite);
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/probes")
        .join(suite.name());
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();

    // The config with the operator's key inline, so replaying needs no key file.
    write_config_with_inline_key(&s, &out);

    fresh_then_converged(&s, &out);
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
    plan_into(&s, &out, "drifted", &[]);
}

/// `plan` with its probe answers written to `out/state`.
fn plan_into(s: &Scenario, out: &Path, state: &str, extra: &[&str]) {
    let mut args = vec!["plan"];
    args.extend_from_slice(extra);
    let plan = s
        .tandem(&args)
        .env("TANDEM_CAPTURE_PROBES", out.join(state))
        .output()
        .unwrap();
    assert_ok(&format!("plan ({state})"), &plan);
}

/// The fresh servers' answers, an apply, then the converged answers.
fn fresh_then_converged(s: &Scenario, out: &Path) {
    plan_into(s, out, "fresh", &["--bootstrap-user", "root"]);
    assert_ok("apply", &s.apply_fresh());
    plan_into(s, out, "converged", &[]);
}
