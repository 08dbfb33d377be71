//! HTTPS end to end with the real ACME protocol: pebble (the ACME test CA) and bind9 run on
//! the scenario's outsider server, which is also the lab's DNS. tandem's issuer (the first app
//! server) obtains the certificate with lego, every app server ends up serving it, verify
//! checks it from this machine, and renewal runs from the issuer's timer without tandem.

mod support;

use std::process::Command;

use support::acme;
use support::browser::Browser;
use support::lab::Suite;
use support::scenario::{Example, Scenario, assert_ok, text};

/// The SHA-256 fingerprint of the certificate `ip:443` serves for `name`, seen from here.
fn served_fingerprint(ip: &str, name: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {ip}:443 -servername {name} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .unwrap();
    let fp = text(&out.stdout).trim().to_string();
    assert!(
        fp.contains("Fingerprint="),
        "no certificate from {ip} for {name}: {}",
        text(&out.stderr)
    );
    fp
}

/// Polls until `ip` serves the certificate `want` for `name` (nginx's reload swaps its
/// workers gracefully, so a handshake right after may still meet an old one).
fn wait_for_fingerprint(ip: &str, name: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let seen = served_fingerprint(ip, name);
        if seen == want || std::time::Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn acme_tls_block(acme: &acme::Acme, renew_days: u32) -> String {
    format!(
        "tls:\n  ca_certificate: ca.pem\n  acme:\n    email: ops@lab.test\n    directory: {}\n    renew_days: {renew_days}\n",
        acme.directory
    )
}

#[test]
fn two_app_servers_serve_one_acme_certificate_and_renew_without_tandem() {
    let lab = lab_or_skip!();
    let s = Scenario::with_apps(lab, Suite::Bookworm, Example::Timesheet, 2);
    let app1 = &s.app;
    let app2 = &s.more_apps[0];
    // The apex resolves to app2 only: the CA's HTTP-01 request lands on the app server that
    // does not hold the token, which must pass it on to the issuer (app1).
    let acme = acme::start(
        &s.outsider,
        &[
            ("timesheet.lab.test", &app2.ip),
            ("www.timesheet.lab.test", &app1.ip),
        ],
    );
    std::fs::write(s.dir.path().join("ca.pem"), &acme.ca_pem).unwrap();
    s.set_domains("[timesheet.lab.test, www.timesheet.lab.test]");
    s.set_tls(&acme_tls_block(&acme, 30));

    let apply = s.apply_fresh();
    assert_ok("first apply", &apply);
    assert!(
        text(&apply.stdout).contains("verify: all"),
        "{}",
        text(&apply.stdout)
    );

    // One certificate, served by both app servers for both names.
    let fp = served_fingerprint(&app1.ip, "www.timesheet.lab.test");
    for (ip, name) in [
        (&app1.ip, "timesheet.lab.test"),
        (&app2.ip, "timesheet.lab.test"),
        (&app2.ip, "www.timesheet.lab.test"),
    ] {
        assert_eq!(wait_for_fingerprint(ip, name, &fp), fp, "{ip} {name}");
    }
    // The key is root's alone on both.
    for app in s.apps() {
        let mode = s.sudo_ok(app, "stat -c '%a %U' /etc/ssl/tandem/timesheet.key");
        assert_eq!(mode.trim(), "600 root", "on {}", app.name);
    }

    // Converged: the plan shows the certificate's state and no change.
    let plan = s.assert_converged("converged with HTTPS");
    assert!(
        text(&plan.stdout).contains("certificate: valid until"),
        "{}",
        text(&plan.stdout)
    );
    let verify = s.run(&["verify"]);
    assert_ok("verify", &verify);
    for check in [
        "PASS app1: certificate renewal timer on",
        "certificate for www.timesheet.lab.test from",
        "HSTS header",
        "http://timesheet.lab.test redirects to https",
        "443 refuses names it does not serve",
    ] {
        assert!(
            text(&verify.stdout).contains(check),
            "{check}: {}",
            text(&verify.stdout)
        );
    }

    // By hand, app2's certificate replaced with a stray one (copied from the placeholder's
    // recipe): the plan says the issuer hands its own out again, and apply does.
    s.sudo_ok(
        app2,
        "cd /etc/ssl/tandem && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
         -nodes -days 3 -subj /CN=stray -keyout timesheet.key -out timesheet.crt 2>/dev/null && \
         systemctl reload nginx",
    );
    let plan = s.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan.stdout));
    assert!(
        text(&plan.stdout).contains("~ certificate: hand it to app2"),
        "{}",
        text(&plan.stdout)
    );
    assert_ok("apply after the hand edit", &s.run(&["apply", "--yes"]));
    assert_eq!(
        wait_for_fingerprint(&app2.ip, "timesheet.lab.test", &fp),
        fp
    );
    s.assert_converged("after apply handed the certificate out again");

    // Renewal with no tandem run: with a renewal window longer than pebble's certificates
    // last, every run of the issuer's timer renews. The timer is scheduled; its service runs
    // as the timer would start it, and both app servers serve the new certificate.
    s.set_tls(&acme_tls_block(&acme, 3000));
    assert_ok(
        "apply with a long renewal window",
        &s.run(&["apply", "--yes"]),
    );
    let timer = s.sudo_ok(app1, "systemctl is-enabled tandem-acme-timesheet.timer; systemctl is-active tandem-acme-timesheet.timer");
    assert_eq!(
        timer.split_whitespace().collect::<Vec<_>>(),
        ["enabled", "active"]
    );
    let before = served_fingerprint(&app2.ip, "timesheet.lab.test");
    s.sudo_ok(app1, "systemctl start tandem-acme-timesheet.service");
    let renewed = s.sudo_ok(
        app1,
        "openssl x509 -in /etc/ssl/tandem/timesheet.crt -noout -fingerprint -sha256",
    );
    let renewed = renewed.trim().replace("SHA256", "sha256");
    assert_ne!(renewed, before, "the issuer did not renew");
    for app in s.apps() {
        let seen = wait_for_fingerprint(&app.ip, "timesheet.lab.test", &renewed);
        assert_eq!(
            seen, renewed,
            "{} does not serve the renewed certificate",
            app.name
        );
    }
}

fn dns01_tls_block(acme: &acme::Acme, renew_days: u32) -> String {
    format!(
        "tls:\n  ca_certificate: ca.pem\n  acme:\n    email: ops@lab.test\n    directory: {}\n    renew_days: {renew_days}\n    dns:\n      rfc2136:\n        nameserver: {}\n        tsig_key: {}\n        tsig_secret: {{file: tsig.secret}}\n",
        acme.directory,
        acme.nameserver,
        acme::TSIG_KEY
    )
}

#[test]
fn the_tenant_wildcard_is_proven_over_dns_and_a_broken_dns_setup_leaves_the_site_alone() {
    let lab = lab_or_skip!();
    let s = Scenario::with_example(lab, Suite::Bookworm, Example::Tenants);
    let acme = acme::start(&s.outsider, &[("crowdminder.lab.test", &s.app.ip)]);
    acme::resolve_ns_on(&s.app, &acme);
    std::fs::write(s.dir.path().join("ca.pem"), &acme.ca_pem).unwrap();
    std::fs::write(s.dir.path().join("tsig.secret"), &acme.tsig_secret).unwrap();
    s.set_tls(&dns01_tls_block(&acme, 30));

    let apply = s.apply_fresh();
    assert_ok("first apply", &apply);
    assert!(
        text(&apply.stdout).contains("verify: all"),
        "{}",
        text(&apply.stdout)
    );
    // The wildcard was tried with a made-up tenant name.
    assert!(
        text(&apply.stdout).contains("certificate for tandem-verify.crowdminder.lab.test from"),
        "{}",
        text(&apply.stdout)
    );
    // The TSIG secret is in no file but the issuer's 0600 dns.env, and never in the output.
    assert!(!text(&apply.stdout).contains(&acme.tsig_secret));
    assert!(!text(&apply.stderr).contains(&acme.tsig_secret));
    let mode = s.sudo_ok(
        &s.app,
        "stat -c '%a %U' /var/lib/tandem-acme/crowdminder/dns.env",
    );
    assert_eq!(mode.trim(), "600 root");

    // Django behind the proxy: `check --deploy` has no TLS warning left (SSL redirect, HSTS,
    // secure cookies), since the env file says HTTPS is on and the settings follow it.
    let deploy_check = s.run(&["manage", "--", "check", "--deploy"]);
    let said = format!(
        "{}{}",
        text(&deploy_check.stdout),
        text(&deploy_check.stderr)
    );
    for warning in ["W004", "W008", "W012", "W016"] {
        assert!(
            !said.contains(&format!("security.{warning}")),
            "{warning}: {said}"
        );
    }
    assert!(said.contains("System check identified"), "{said}");

    assert_ok(
        "tenant add Acme",
        &s.run(&["tenant", "add", "Acme", "acme.crowdminder.lab.test"]),
    );
    // A real browser trusting only the lab CA's root loads both sites over https.
    if let Some(browser) = Browser::start_trusting(
        &["crowdminder.lab.test"],
        &s.app.ip,
        Some(&acme.issuing_root),
    ) {
        let public = browser.visit("https://crowdminder.lab.test/");
        let shot = browser.screenshot("https-tenants-public");
        assert_eq!(
            public.title,
            "crowdminder: time tracking for consultancies",
            "no page (a certificate error?), screenshot {}: {public:?}",
            shot.display()
        );
        let tenant = browser.visit("https://acme.crowdminder.lab.test/");
        let shot = browser.screenshot("https-tenants-acme");
        assert_eq!(
            tenant.title,
            "Timesheet: Acme",
            "no page (a certificate error?), screenshot {}: {tenant:?}",
            shot.display()
        );
    }

    // A broken DNS-01 set-up (a wrong TSIG secret) while a renewal is due: apply fails and
    // says where, and the site keeps its certificate and keeps answering.
    let before = served_fingerprint(&s.app.ip, "crowdminder.lab.test");
    std::fs::write(
        s.dir.path().join("tsig.secret"),
        "bm90IHRoZSBzZWNyZXQgYmluZCBrbm93cw==",
    )
    .unwrap();
    s.set_tls(&dns01_tls_block(&acme, 3000));
    let broken = s.run(&["apply", "--yes"]);
    assert!(!broken.status.success(), "{}", text(&broken.stdout));
    let said = format!("{}{}", text(&broken.stdout), text(&broken.stderr));
    assert!(said.contains("certificate"), "{said}");
    assert!(
        said.contains("rfc2136")
            || said.contains("TSIG")
            || said.contains("NOTAUTH")
            || said.contains("BADSIG"),
        "the error does not point at the DNS update: {said}"
    );
    assert_eq!(
        served_fingerprint(&s.app.ip, "crowdminder.lab.test"),
        before
    );
    let verify = s.run(&["verify"]);
    assert!(
        text(&verify.stdout).contains("PASS app1: nginx answers https://crowdminder.lab.test"),
        "{}",
        text(&verify.stdout)
    );
}

#[test]
fn provided_certificate_files_are_served_and_their_key_stays_private() {
    let lab = lab_or_skip!();
    let s = Scenario::new(lab, Suite::Trixie);
    // The operator's own CA and a certificate for the site, made here with openssl.
    let dir = s.dir.path();
    support::scenario::operator_certificate(dir, "operator-ca", 30, 20);
    s.set_tls(
        "tls:\n  mode: files\n  hsts: false\n  ca_certificate: ca.pem\n  certificate: {file: site.crt}\n  key: {file: site.key}\n",
    );
    let apply = s.apply_fresh();
    assert_ok("first apply", &apply);
    let key = std::fs::read_to_string(dir.join("site.key")).unwrap();
    let body = key.lines().nth(1).unwrap();
    assert!(
        !text(&apply.stdout).contains(body),
        "the key's PEM appeared in apply's output"
    );
    assert!(
        text(&apply.stdout).contains("verify: all"),
        "{}",
        text(&apply.stdout)
    );
    let mode = s.sudo_ok(&s.app, "stat -c '%a %U' /etc/ssl/tandem/timesheet.key");
    assert_eq!(mode.trim(), "600 root");
    let local = Command::new("sh")
        .arg("-c")
        .arg("openssl x509 -in site.crt -noout -fingerprint -sha256")
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(
        served_fingerprint(&s.app.ip, "timesheet.lab.test"),
        text(&local.stdout).trim()
    );
    // No HSTS when it is turned off, and 20 days left passes verify's 14-day floor.
    let verify = s.run(&["verify"]);
    assert_ok("verify", &verify);
    assert!(
        !text(&verify.stdout).contains("HSTS"),
        "{}",
        text(&verify.stdout)
    );
    s.assert_converged("with the operator's own certificate");
}
