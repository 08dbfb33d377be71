//! Multi-tenant Django (django-tenants) deployed by tandem: `migrate_schemas`, the public
//! tenant created on the apex domain, tenants answering on their own subdomains through the
//! nginx wildcard, each with its own data in its own schema.

mod support;

use support::browser::Browser;
use support::lab::Suite;
use support::scenario::{Example, Scenario, assert_ok, fetch, text};

#[test]
fn tenants_answer_on_their_subdomains_with_their_own_data() {
    let lab = lab_or_skip!();
    let s = Scenario::with_example(lab, Suite::Bookworm, Example::Tenants);
    let apply = s.apply_fresh();
    assert_ok("first apply", &apply);
    assert!(
        text(&apply.stdout).contains("verify: all"),
        "{}",
        text(&apply.stdout)
    );

    // Two tenants onboarded with `tandem tenant add` (schema made from the name, or given),
    // then a row in each one's own schema.
    assert_ok(
        "tenant add Acme",
        &s.run(&["tenant", "add", "Acme", "acme.crowdminder.lab.test"]),
    );
    assert_ok(
        "tenant add Globex",
        &s.run(&[
            "tenant",
            "add",
            "Globex",
            "globex.crowdminder.lab.test",
            "--schema",
            "globex",
        ]),
    );
    let again = s.run(&["tenant", "add", "Acme", "acme2.crowdminder.lab.test"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("schema acme exists"),
        "{}",
        text(&again.stderr)
    );
    let elsewhere = s.run(&["tenant", "add", "Evil", "evil.example.com"]);
    assert_eq!(elsewhere.status.code(), Some(1));
    assert!(
        text(&elsewhere.stderr).contains("not a domain the config serves"),
        "{}",
        text(&elsewhere.stderr)
    );
    let listed = s.run(&["tenant", "list", "--json"]);
    assert_ok("tenant list", &listed);
    let doc: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let schemas: Vec<&str> = doc["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["schema"].as_str().unwrap())
        .collect();
    assert_eq!(schemas, ["acme", "globex", "public"], "{doc}");
    s.manage_shell(
        r#"from django_tenants.utils import schema_context
from entries.models import Entry
for schema, name in [('acme', 'Acme'), ('globex', 'Globex')]:
    with schema_context(schema):
        Entry.objects.create(person=name + ' person', project='p', hours=1, day='2026-11-27')
"#,
    );

    let (status, public) = fetch(&s.outsider, &s.app.ip, "crowdminder.lab.test", "/");
    assert_eq!(status, "200", "{public}");
    assert!(
        public.contains("crowdminder: time tracking")
            && public.contains("Acme")
            && public.contains("Globex"),
        "{public}"
    );
    assert!(
        !public.contains("Acme person"),
        "the public site shows tenant data"
    );

    let (status, acme) = fetch(&s.outsider, &s.app.ip, "acme.crowdminder.lab.test", "/");
    assert_eq!(status, "200", "{acme}");
    assert!(
        acme.contains("Timesheet: Acme") && acme.contains("Acme person"),
        "{acme}"
    );
    assert!(
        !acme.contains("Globex person"),
        "a tenant sees another tenant's rows"
    );
    let (_, globex) = fetch(&s.outsider, &s.app.ip, "globex.crowdminder.lab.test", "/");
    assert!(
        globex.contains("Globex person") && !globex.contains("Acme person"),
        "{globex}"
    );

    // In a real browser: the pages render with the static CSS applied (served by nginx from
    // collectstatic's output), the public site on the apex and a tenant on its subdomain.
    if let Some(browser) = Browser::start(&["crowdminder.lab.test"], &s.app.ip) {
        let public = browser.visit("http://crowdminder.lab.test/");
        let shot = browser.screenshot("tenants-public");
        assert_eq!(
            public.title, "crowdminder: time tracking for consultancies",
            "{public:?}"
        );
        assert!(
            public.body.contains("Acme") && public.body.contains("Globex"),
            "{public:?}"
        );
        assert_eq!(
            public.title_color,
            "rgb(0, 102, 51)",
            "style.css not applied on the public site (screenshot: {})",
            shot.display()
        );
        let acme = browser.visit("http://acme.crowdminder.lab.test/");
        let shot = browser.screenshot("tenants-acme");
        assert_eq!(acme.title, "Timesheet: Acme", "{acme:?}");
        assert!(
            acme.body.contains("Acme person") && !acme.body.contains("Globex person"),
            "{acme:?}"
        );
        assert_eq!(
            acme.title_color,
            "rgb(0, 102, 51)",
            "style.css not applied on the tenant site (screenshot: {})",
            shot.display()
        );
    }

    s.assert_converged("tenants");
    let tenant_checks = || {
        let verify = s.run(&["verify", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
        ["the public tenant exists", "no unapplied migrations"].map(|name| {
            report["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .map(|c| c["ok"] == true)
                .unwrap_or_else(|| panic!("no check `{name}`: {report}"))
        })
    };
    assert_eq!(tenant_checks(), [true, true], "verify with tenants");
    // One tenant's migration unapplied by hand: the tenant check (migrate_schemas --check,
    // in the same Django process as the public tenant's) finds it.
    let migration_row = |sql: &str| {
        s.manage_shell(&format!(
            "from django.db import connection\nfrom django_tenants.utils import schema_context\n\
             with schema_context('acme'):\n    with connection.cursor() as c:\n        c.execute(\"{sql}\")\n"
        ));
    };
    migration_row("DELETE FROM django_migrations WHERE app = 'entries' AND name = '0001_initial'");
    assert_eq!(
        tenant_checks(),
        [true, false],
        "a tenant's migration unapplied"
    );
    migration_row(
        "INSERT INTO django_migrations (app, name, applied) VALUES ('entries', '0001_initial', now())",
    );
    assert_eq!(tenant_checks(), [true, true], "the row put back");

    // A release broken only for tenants (their page raises; the public site's is another
    // view) passes a check of the apex alone: the health check also asks the first tenant,
    // so it goes live nowhere and the tenants keep being served.
    let views = s.dir.path().join("tenants/entries/views.py");
    let good = std::fs::read_to_string(&views).unwrap();
    std::fs::write(
        &views,
        good.replace(
            "def entry_list(request):\n",
            "def entry_list(request):\n    raise RuntimeError(\"broken for tenants\")\n",
        ),
    )
    .unwrap();
    let deploy = s.run(&["deploy", "--yes"]);
    let said = text(&deploy.stdout) + &text(&deploy.stderr);
    assert_eq!(deploy.status.code(), Some(1), "{said}");
    assert!(
        said.contains(
            "health check failed before going live: / as acme.crowdminder.lab.test raised RuntimeError: broken for tenants"
        ),
        "{said}"
    );
    let (status, acme) = fetch(&s.outsider, &s.app.ip, "acme.crowdminder.lab.test", "/");
    assert!(status == "200" && acme.contains("Acme person"), "{acme}");
    // Fixed (a new release: the code differs from the live one by a comment), it goes live
    // with both checks passing.
    std::fs::write(&views, format!("{good}\n# fixed\n")).unwrap();
    assert_ok("deploy of the fixed release", &s.run(&["deploy", "--yes"]));
}
