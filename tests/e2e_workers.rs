//! Background processes end to end: Celery (tenant-aware, tenant-schemas-celery) from the
//! tenants example as systemd services on the app servers, beat on one of them only, Redis on
//! the db server as the broker, closed to everyone but the app servers.

mod support;

use std::time::{Duration, Instant};

use support::lab::Suite;
use support::scenario::{BROKER_PASSWORD, Example, Scenario, assert_ok, fetch, text};

/// The entries of `schema` made by Celery, as `person|project` lines, through Django.
fn celery_entries(s: &Scenario, schema: &str) -> Vec<String> {
    s.manage_shell(&format!(
        "from django_tenants.utils import schema_context\n\
         from entries.models import Entry\n\
         with schema_context('{schema}'):\n\
         \x20   for e in Entry.objects.filter(project__startswith='celery').order_by('id'):\n\
         \x20       print('entry=' + e.person + '|' + e.project)"
    ))
    .lines()
    .filter_map(|l| l.strip_prefix("entry=").map(str::to_string))
    .collect()
}

/// Polls until `schema` has an entry by `person`, for up to a minute.
fn wait_for_entry(s: &Scenario, schema: &str, person: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = celery_entries(s, schema)
            .into_iter()
            .find(|e| e.starts_with(&format!("{person}|")))
        {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no entry by {person} in {schema} after a minute"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A request to Acme's site, served by app1, that queues `record_entry` for `person`.
fn enqueue_on_acme(s: &Scenario, person: &str) {
    let (status, body) = fetch(
        &s.outsider,
        &s.app.ip,
        "acme.crowdminder.lab.test",
        &format!("/enqueue/?person={person}"),
    );
    assert_eq!(status, "200", "{body}");
}

#[test]
fn a_task_queued_on_one_tenant_runs_on_the_other_app_server_in_its_schema() {
    let lab = lab_or_skip!();
    let s = Scenario::with_apps(lab, Suite::Bookworm, Example::Tenants, 2);
    let app2 = &s.more_apps[0];
    // The worker runs on app2 only, so a task queued through app1 must cross servers; beat
    // runs on one server (app1, the first of all) and ticks every 2 s.
    s.add_config(
        "processes:\n\
         \x20 - {name: worker, command: celery -A crowdminder worker -l info --concurrency 2, servers: [app2], stop_timeout: 30}\n\
         \x20 - {name: beat, command: celery -A crowdminder beat -l info --schedule /tmp/beat-schedule, singleton: true, db_connections: 1}\n\
         broker: {password: {env: TANDEM_REDIS_PASSWORD}}\n",
    );
    s.edit_config(
        "  migrate: migrate_schemas\n",
        "  migrate: migrate_schemas\n  env: {CROWDMINDER_TICK_SECONDS: '2'}\n",
    );
    let out = s.apply_fresh();
    assert_ok("first apply", &out);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(
        !said.contains(BROKER_PASSWORD),
        "the broker password was echoed"
    );
    for check in [
        "crowdminder-worker.service active",
        "crowdminder-beat.service not running here",
        "broker (Redis) login with the app's credentials",
        "6379 (Redis) closed to this machine",
    ] {
        assert!(said.contains(check), "verify lacks `{check}`:\n{said}");
    }
    assert!(said.contains("verify: all"), "{said}");

    assert_ok(
        "tenant add Acme",
        &s.run(&["tenant", "add", "Acme", "acme.crowdminder.lab.test"]),
    );
    assert_ok(
        "tenant add Globex",
        &s.run(&["tenant", "add", "Globex", "globex.crowdminder.lab.test"]),
    );

    // A web request on Acme's site, served by app1, queues the task; app2's worker runs it
    // in Acme's schema, and Globex sees nothing of it.
    enqueue_on_acme(&s, "alice");
    let entry = wait_for_entry(&s, "acme", "alice");
    assert_eq!(entry, "alice|celery v1 on app2.lab.test");
    assert!(
        celery_entries(&s, "globex").is_empty(),
        "Globex sees Acme's row"
    );

    // beat: one scheduler, so ticks come one per interval, never two at once. (Ticks beat
    // sent before the worker first started ran in a burst: count from now.)
    s.manage_shell("from customers.models import Tick\nTick.objects.all().delete()");
    std::thread::sleep(Duration::from_secs(9));
    let ticks = s.manage_shell(
        "from customers.models import Tick\n\
         at = [t.at.timestamp() for t in Tick.objects.order_by('at')]\n\
         print('ticks=%d' % len(at))\n\
         print('closest=%.2f' % min([b - a for a, b in zip(at, at[1:])] or [99]))",
    );
    let count: usize = ticks
        .lines()
        .find_map(|l| l.strip_prefix("ticks="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let closest: f64 = ticks
        .lines()
        .find_map(|l| l.strip_prefix("closest="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    assert!((3..=6).contains(&count), "not one tick per 2 s: {ticks}");
    assert!(
        closest > 1.0,
        "two ticks at once: beat runs twice ({ticks})"
    );
    let beat_on_app2 = s.sudo(app2, "systemctl is-active crowdminder-beat.service");
    assert_ne!(text(&beat_on_app2.stdout).trim(), "active");

    // The outsider cannot reach the broker.
    let probe = s.outsider.ssh(&format!(
        "python3 -c \"import socket\ntry:\n    socket.create_connection(('{}', 6379), timeout=3); print('open')\nexcept Exception:\n    print('closed')\"",
        s.db.ip
    ));
    assert_eq!(
        text(&probe.stdout).trim(),
        "closed",
        "the outsider reaches Redis"
    );

    // A release with changed task code: the worker runs the new code.
    let tasks = s.dir.path().join("tenants/entries/tasks.py");
    let code = std::fs::read_to_string(&tasks).unwrap();
    std::fs::write(&tasks, code.replace("VERSION = \"1\"", "VERSION = \"2\"")).unwrap();
    assert_ok("deploy", &s.run(&["deploy", "--yes"]));
    enqueue_on_acme(&s, "bob");
    assert_eq!(
        wait_for_entry(&s, "acme", "bob"),
        "bob|celery v2 on app2.lab.test"
    );
    s.assert_converged("after the release");
}
