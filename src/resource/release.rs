//! The release: the app server's running Django code. Its probe reads which release is
//! current and which code it holds; when the code is not this run's `Bundle`, the plan ships
//! the bundle as a new release, switched live only when check, migrations and collectstatic
//! succeeded and gunicorn runs on it.

use crate::app::bundle::Bundle;
use crate::config::Config;
use crate::config::identifier::shell_word;
use crate::engine::vars::Vars;
use crate::model::plan::Change;
use crate::model::playbook::Phase;
pub use crate::model::state::ReleaseState;
use crate::resource::script::{assignments, payload};

/// Releases kept on each app server (the current one included).
pub const KEEP: usize = 5;

/// Probe query for `ReleaseState`. Shell builtins where they do (every process is CPU taken
/// from the requests, three times a CI pipeline).
pub fn probe(vars: &Vars) -> String {
    format!(
        "cd {root} 2>/dev/null || exit 3; r=$(readlink current 2>/dev/null); echo \"current=${{r##*/}}\"; \
         echo \"hash=$(cat current/.tandem-release 2>/dev/null)\"; for r in releases/*; do [ -e \"$r\" ] && echo \"release=${{r#releases/}}\"; done; \
         {units}cd current 2>/dev/null && find . -maxdepth 4 -name venv -prune -o -path '*/migrations/[0-9]*.py' -printf 'migration=%p\\n' 2>/dev/null; true",
        root = shell_word(&vars.paths.root),
        units = gunicorn_units_query(vars),
    )
}

/// Shell (one line, `;`-ended) that prints `gunicorn=UNIT STATE RELEASE` for each of gunicorn's
/// two units: its `ActiveState` (what `systemctl is-active` says) and the release directory
/// its main process runs in (empty when none runs). One `systemctl show` for both units.
/// Read by `model::state::gunicorn_units`.
pub fn gunicorn_units_query(vars: &Vars) -> String {
    format!(
        "systemctl show -p Id -p ActiveState -p MainPID -- {service} {bridge} 2>/dev/null | {{ u=; \
         while IFS= read -r l || [ -n \"$u\" ]; do case $l in Id=*) u=${{l#Id=}} ;; ActiveState=*) s=${{l#ActiveState=}} ;; \
         MainPID=*) p=${{l#MainPID=}} ;; *) [ -z \"$u\" ] || {{ r=$(readlink /proc/$p/cwd 2>/dev/null); \
         echo \"gunicorn=$u $s ${{r##*/}}\"; }}; u= s= p= ;; esac; done; }}; ",
        service = shell_word(&vars.units.service),
        bridge = shell_word(&vars.units.bridge),
    )
}

/// The changes that ship `bundle`, when the code live on the host (`state`) is not it: its
/// build (code and virtualenv, no database needed, so apply runs it while the db server is
/// provisioned), then its activation (check, migrations, collectstatic, switch).
/// `migrate`: this server runs the migrations (the first app server).
pub fn plan(
    migrate: bool,
    config: &Config,
    vars: &Vars,
    bundle: &Bundle,
    state: &ReleaseState,
) -> Vec<Change> {
    if state.current_hash.as_deref() == Some(bundle.hash.as_str()) {
        // The code is live; a switch cut off midway (or a unit started by hand) is finished
        // by switching the live release to itself.
        return state
            .gunicorn_drift()
            .map(|why| {
                Change::release(
                    "Ship the Django code",
                    format!(
                        "~ gunicorn: one unit on {} ({why})",
                        state.current.as_deref().unwrap_or_default()
                    ),
                    switch_live_script(vars, false),
                )
            })
            .into_iter()
            .collect();
    }
    let id = release_id(&bundle.hash);
    let was = state.current.as_deref().unwrap_or("none");
    // The migrations this release brings that the live one does not have: what the first
    // app server's `migrate` will run (they must keep the live release working while the
    // servers switch one at a time). Nothing is said before the first release.
    let new_migrations: Vec<&str> = bundle
        .migrations
        .iter()
        .filter(|m| state.current.is_some() && !state.migrations.contains(m))
        .map(String::as_str)
        .collect();
    let mut build = Change::release(
        "Ship the Django code",
        format!("+ build release {id}: code and virtualenv"),
        build_script(config, vars, bundle, &id),
    );
    build.role = Phase::Build;
    let mut activate = Change::release(
        "Ship the Django code",
        format!("+ release {id} ({} files; current: {was})", bundle.files),
        activate_script(config, vars, bundle, &id, migrate),
    );
    if migrate && !new_migrations.is_empty() {
        activate.detail = Some(format!(
            "new migrations (run before the first server switches; the live release must \
             keep working with them):\n{}",
            new_migrations
                .iter()
                .map(|m| format!("  {m}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    vec![build, activate]
}

/// A new release id: UTC time (sorts in order) and the code hash's start.
pub fn release_id(hash: &str) -> String {
    release_id_at(jiff::Timestamp::now(), hash)
}

fn release_id_at(at: jiff::Timestamp, hash: &str) -> String {
    format!(
        "{}-{}",
        at.strftime("%Y%m%dT%H%M%SZ"),
        &hash[..12.min(hash.len())]
    )
}

/// Creates the public tenant (schema `public`) and its domain when missing. Tenant models are
/// the project's own: a `name` field, the usual one, is filled when the model has it.
const PUBLIC_TENANT: &str = include_str!("../../scripts/release/public_tenant.py");

/// In a release: the `django_migrations` rows it went live with, for `verify` (which then
/// needs no Django start), and the migrations directories outside the release (the venv's).
pub const MIGRATIONS_RECORD: &str = ".tandem-migrations";

/// Writes `MIGRATIONS_RECORD` in the activation's Django process, only when Django finds no
/// migration pending. The rows kept are the graph's own (squashed ones with what they
/// replace): while they are all in the table and no migration file changed, `migrate --check`
/// has nothing to report either (more rows only ever mean more applied).
const RECORD_MIGRATIONS: &str = include_str!("../../scripts/release/record_migrations.py");

/// Runs manage.py in release `$R` as the app user, with the env file's variables and the
/// release's own `DJANGO_STATIC_ROOT` (`$STATIC`).
pub(crate) fn manage_function() -> String {
    format!(
        "manage() {{ ({}; cd \"$R\" && runuser -u \"$APPUSER\" -- \"$R/venv/bin/python\" manage.py \"$@\"); }}\n",
        crate::resource::script::django_environment("\"$ENVFILE\"", "\"$STATIC\"")
    )
}

/// The variables both halves of a release use.
fn release_preamble(vars: &Vars, bundle: &Bundle, id: &str) -> String {
    let root = &vars.paths.root;
    format!(
        "set -e\numask 022\n{}{}",
        crate::resource::script::YIELD_TO_SERVING,
        assignments(&[
            ("ROOT", root),
            ("R", &format!("{root}/releases/{id}")),
            ("APPUSER", &vars.user),
            ("ENVFILE", &vars.paths.env_file),
            (
                "STATIC",
                &vars.static_root_in(&format!("{root}/releases/{id}"))
            ),
            (
                "V",
                &format!("{root}/venvs/{}", &bundle.requirements_hash[..16])
            ),
        ])
    )
}

/// What pip needs to build a requirement from source (C extensions, psycopg2's pg_config).
/// Installed on an app server only when a requirement needs them: a production server without
/// a compiler is one tool fewer for an intruder, and a fresh one is provisioned faster.
pub const BUILD_DEPENDENCIES: [&str; 3] = ["build-essential", "python3-dev", "libpq-dev"];

/// Marks a release whose code and virtualenv are complete.
const BUILT: &str = ".tandem-built";

const BUILD_SH: &str = include_str!("../../scripts/release/build.sh");
const SWITCH_SH: &str = include_str!("../../scripts/release/switch.sh");
const GO_LIVE_SH: &str = include_str!("../../scripts/release/go_live.sh");
const HEALTH_CLIENT_PY: &str = include_str!("../../scripts/release/health_client.py");

/// The script that unpacks `bundle` as release `id` and gives it its virtualenv
/// (scripts/release/build.sh): nothing here needs the database, and nothing goes live.
pub fn build_script(config: &Config, vars: &Vars, bundle: &Bundle, id: &str) -> String {
    let mut s = release_preamble(vars, bundle, id);
    s.push_str(&assignments(&[
        ("REQUIREMENTS", &config.django.requirements),
        ("BUILT", BUILT),
        ("BUILD_DEPS", &BUILD_DEPENDENCIES.join(" ")),
        ("BUILD_DEPS_COUNT", &BUILD_DEPENDENCIES.len().to_string()),
    ]));
    s.push_str(&format!(
        "build_deps_installed() {{ {}; }}\n",
        crate::resource::packages::probe(&BUILD_DEPENDENCIES.map(String::from))
    ));
    s.push_str(crate::resource::packages::APT_INSTALL);
    s.push_str("rm -rf \"$R\"\nmkdir -p \"$R\" \"$ROOT/venvs\"\n");
    s.push_str(&format!(
        "{}\n",
        payload(&bundle.tar_gz, "| tar -xz --no-same-owner -C \"$R\"")
    ));
    s.push_str(BUILD_SH);
    s
}

/// The script that takes built release `id` live: check --deploy, the migrations (when
/// `migrate`), collectstatic, then the switch, put back when gunicorn does not start on it
/// (scripts/release/go_live.sh).
pub fn activate_script(
    config: &Config,
    vars: &Vars,
    bundle: &Bundle,
    id: &str,
    migrate: bool,
) -> String {
    let mut s = release_preamble(vars, bundle, id);
    s.push_str(&format!(
        "[ -e \"$R/{BUILT}\" ] || {{ echo \"release $(basename \"$R\") was not built (its build failed or did not run): run tandem apply again\" >&2; exit 1; }}\n"
    ));
    s.push_str(&manage_function());
    // collectstatic writes into the release ($R is the app user's since its build).
    s.push_str("runuser -u \"$APPUSER\" -- mkdir -p \"$STATIC\"\n");
    s.push_str(&health_assignments(config));
    // check --deploy, the migrations and collectstatic in one Django process: each manage.py
    // start costs about a second, most of a code-only release.
    let mut py = String::from(
        "import sys\nfrom django.core.management import call_command\n\
         print('== manage.py check --deploy', file=sys.stderr)\n\
         call_command('check', deploy=True, fail_level='ERROR')\n",
    );
    if !migrate {
        py.push_str("print('migrations: run by the first app server', file=sys.stderr)\n");
    } else if config.django.is_multi_tenant() {
        // Shared apps first; then the public tenant and its domain (the apex), without which
        // django-tenants answers every request with 400/404; then every tenant's schema.
        let apex = config.apex().unwrap_or_default();
        py.push_str("print('== manage.py migrate_schemas --shared', file=sys.stderr)\n");
        py.push_str("call_command('migrate_schemas', shared=True, interactive=False)\n");
        py.push_str(&PUBLIC_TENANT.replace("APEX", &apex.replace('\'', "")));
        py.push_str("print('== manage.py migrate_schemas', file=sys.stderr)\n");
        py.push_str("call_command('migrate_schemas', interactive=False)\n");
    } else {
        py.push_str("print('== manage.py migrate', file=sys.stderr)\n");
        py.push_str("call_command('migrate', interactive=False)\n");
    }
    py.push_str(
        "print('== manage.py collectstatic', file=sys.stderr)\n\
         call_command('collectstatic', interactive=False)\n",
    );
    py.push_str(HEALTH_CLIENT_PY);
    // Tenants' schemas each have their own table: verify asks Django for those.
    if !config.django.is_multi_tenant() {
        py.push_str(&RECORD_MIGRATIONS.replace("RECORD", MIGRATIONS_RECORD));
    }
    // The tenant the health check also asks comes back on descriptor 3 (the app user cannot
    // write files here; it can write to a descriptor root opened), read into HEALTH_TENANT.
    s.push_str(&format!(
        "tenant_file=$(mktemp)\nmanage shell >&2 3>\"$tenant_file\" <<'TANDEM_PY'\n{py}TANDEM_PY\n\
         HEALTH_TENANT=$(cat \"$tenant_file\")\nrm -f \"$tenant_file\"\n"
    ));
    s.push_str(&switch_function(vars));
    s.push_str(HEALTH_FUNCTION);
    s.push_str(&assignments(&[
        ("HASH", &bundle.hash),
        ("KEEP", &KEEP.to_string()),
    ]));
    s.push_str(GO_LIVE_SH);
    s
}

/// `django.health` for both checks, exported for the Django process: the site's first domain,
/// its scheme, the path and the accepted status; for a multi-tenant project the wildcard
/// domains' suffixes, under which the first tenant is asked too.
fn health_assignments(config: &Config) -> String {
    let health = &config.django.health;
    let host = config.apex().unwrap_or_default();
    let tenant_suffixes = if config.django.is_multi_tenant() {
        config
            .domains
            .iter()
            .filter_map(|d| d.strip_prefix('*'))
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        String::new()
    };
    let status = health
        .status
        .map_or_else(|| "below-500".to_string(), |s| s.to_string());
    format!(
        "{}export HEALTH_SCHEME HEALTH_HOST HEALTH_PATH HEALTH_STATUS HEALTH_TENANT_SUFFIXES\n",
        assignments(&[
            (
                "HEALTH_SCHEME",
                if config.tls.enabled() {
                    "https"
                } else {
                    "http"
                },
            ),
            ("HEALTH_HOST", &host),
            ("HEALTH_PATH", &health.path),
            ("HEALTH_STATUS", &status),
            ("HEALTH_SECONDS", &health.timeout_seconds.to_string()),
            ("HEALTH_TENANT_SUFFIXES", &tenant_suffixes),
        ])
    )
}

/// Defines `health`: the check through this server's nginx (scripts/release/health.py), with
/// `health_assignments`' values, for the site's first domain and, when the check before going
/// live named one in `$HEALTH_TENANT`, a tenant's.
const HEALTH_FUNCTION: &str = concat!(
    "health_of() {\n  python3 - \"$HEALTH_SCHEME\" \"$1\" \"$HEALTH_PATH\" \"$HEALTH_STATUS\" \"$HEALTH_SECONDS\" <<'TANDEM_PY'\n",
    include_str!("../../scripts/release/health.py"),
    "TANDEM_PY\n}\n",
    "health() {\n  health_of \"$HEALTH_HOST\" || return 1\n  [ -z \"${HEALTH_TENANT:-}\" ] || health_of \"$HEALTH_TENANT\"\n}\n"
);

/// Defines `switch_to DIR` (scripts/release/switch.sh) for this app server's units.
pub fn switch_function(vars: &Vars) -> String {
    let processes: Vec<&str> = vars
        .processes
        .here
        .iter()
        .map(|p| p.unit.as_str())
        .collect();
    format!(
        "{}{SWITCH_SH}",
        assignments(&[
            ("SERVICE", &vars.units.service),
            ("SOCKET", &vars.units.socket),
            ("BRIDGE", &vars.units.bridge),
            ("PROCESSES", &processes.join(" ")),
            ("WORKERS", &vars.django.workers.to_string()),
        ])
    )
}

/// Switches the live release to itself: the idle gunicorn unit starts on it (new settings, a
/// changed unit) and the live one stops. `only_if_running`: nothing when no gunicorn runs
/// (socket activation starts the service with the new settings at the first request);
/// otherwise the service is started. Says which unit serves, and its pid.
pub fn switch_live_script(vars: &Vars, only_if_running: bool) -> String {
    // No `exit 0` when skipping: a handler's script goes on after this (it clears the mark
    // that the handler is owed).
    let running = if only_if_running {
        "systemctl is-active --quiet \"$SERVICE\" || systemctl is-active --quiet \"$BRIDGE\""
    } else {
        "true"
    };
    format!(
        "{assign}{switch}if {running}; then\n\
         live=$(readlink \"$ROOT/current\") || {{ echo 'no release is live here' >&2; exit 1; }}\n\
         switch_to \"$live\"\n\
         for u in \"$SERVICE\" \"$BRIDGE\"; do\n\
         if systemctl is-active --quiet \"$u\"; then echo \"restarted gunicorn: $u serves (pid $(systemctl show -p MainPID --value \"$u\"))\"; fi\n\
         done\n\
         else echo 'gunicorn is not running: it starts with the new settings'; fi\n",
        assign = assignments(&[("ROOT", &vars.paths.root)]),
        switch = switch_function(vars),
    )
}

/// Switches `current` back to release `id` (already on the host) and restarts gunicorn.
pub fn rollback_script(vars: &Vars, id: &str) -> String {
    let root = &vars.paths.root;
    format!(
        "set -e\n{}{}[ -d \"$R\" ] || {{ echo \"no release $R\" >&2; exit 1; }}\n\
         switch_to \"$R\"\necho \"rolled back to $(basename \"$R\")\"\n",
        assignments(&[("ROOT", root), ("R", &format!("{root}/releases/{id}"))]),
        switch_function(vars),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::table::fake_systemctl;

    /// The release probe, run with the system's sh on a release tree: the current release, its
    /// hash, every release, the current release's migrations, and gunicorn's units from one
    /// `systemctl show` (its output format: blocks of properties, blank-line separated, the
    /// properties in systemd's order), the serving one with its main process's directory.
    #[test]
    fn the_release_probe_reads_the_tree_and_both_units_from_one_systemctl() {
        let (dir, config, _) = shop_and_bundle(0);
        let root = dir.path().join("srv");
        let r2 = root.join("releases/20261208T010000Z-b");
        std::fs::create_dir_all(root.join("releases/20261207T010000Z-a")).unwrap();
        std::fs::create_dir_all(r2.join("entries/migrations")).unwrap();
        std::fs::create_dir_all(r2.join("venv/lib/migrations")).unwrap();
        std::fs::write(r2.join("entries/migrations/0001_initial.py"), "").unwrap();
        std::fs::write(r2.join("venv/lib/migrations/0001_not_ours.py"), "").unwrap();
        std::fs::write(r2.join(".tandem-release"), "c0de\n").unwrap();
        std::os::unix::fs::symlink("releases/20261208T010000Z-b", root.join("current")).unwrap();
        let mut master = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(&r2)
            .spawn()
            .unwrap();
        let bin = fake_systemctl(
            dir.path(),
            &format!(
                "echo \"$*\" >>\"$LOG\"\nprintf 'MainPID=0\\nId=gunicorn-shop.service\\nActiveState=deactivating\\n\\nMainPID={}\\nId=gunicorn-shop-bridge.service\\nActiveState=active\\n'\n",
                master.id()
            ),
        );
        let mut vars = Vars::for_paths(&config, &config.servers[1]);
        vars.paths.root = root.display().to_string();
        let log = dir.path().join("log");
        let run_probe = || {
            std::process::Command::new("sh")
                .args(["-c", &probe(&vars)])
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .env("LOG", &log)
                .output()
                .unwrap()
        };
        let out = run_probe();
        master.kill().unwrap();
        master.wait().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        let state = ReleaseState::parse(0, &text);
        assert_eq!(state.current.as_deref(), Some("20261208T010000Z-b"));
        assert_eq!(state.current_hash.as_deref(), Some("c0de"));
        assert_eq!(state.releases, ["20261207T010000Z-a", "20261208T010000Z-b"]);
        assert_eq!(state.migrations, ["entries/migrations/0001_initial.py"]);
        assert_eq!(
            crate::model::state::gunicorn_units(&text),
            [
                crate::model::state::GunicornUnit {
                    unit: "gunicorn-shop.service",
                    state: "deactivating",
                    release: ""
                },
                crate::model::state::GunicornUnit {
                    unit: "gunicorn-shop-bridge.service",
                    state: "active",
                    release: "20261208T010000Z-b"
                },
            ]
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap().lines().count(),
            1,
            "one systemctl"
        );
        // No release yet: no `release=` line from the empty directory's glob.
        std::fs::remove_dir_all(root.join("releases")).unwrap();
        std::fs::create_dir_all(root.join("releases")).unwrap();
        let out = run_probe();
        assert!(
            ReleaseState::parse(0, &String::from_utf8_lossy(&out.stdout))
                .releases
                .is_empty()
        );
    }

    /// The test config `shop` (kept in the returned directory) and a bundle of `files` files
    /// for its app server.
    fn shop_and_bundle(files: usize) -> (tempfile::TempDir, crate::config::Config, Bundle) {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::testing::shop(dir.path());
        let bundle = Bundle {
            hash: "c0de".repeat(16),
            requirements_hash: "feed".repeat(16),
            tar_gz: Vec::new(),
            files,
            migrations: vec![
                "entries/migrations/0001_initial.py".into(),
                "entries/migrations/0002_note.py".into(),
            ],
        };
        (dir, config, bundle)
    }

    /// The activation script parses and its Python compiles, plain and multi-tenant, on the
    /// server that migrates and on the others, with an apex that would break a careless quote.
    #[test]
    fn the_activation_parses_and_its_python_compiles() {
        use crate::resource::table::{assert_python_heredocs_compile, assert_shell_syntax};
        let (_dir, mut config, bundle) = shop_and_bundle(0);
        let vars = Vars::for_paths(&config, &config.servers[1]);
        for tenants in [false, true] {
            if tenants {
                config.django.migrate = crate::config::MigrateCommand::MigrateSchemas;
                config.domains = vec!["o-brien.example.com".into(), "*.o-brien.example.com".into()];
            }
            for migrate in [true, false] {
                let script = activate_script(&config, &vars, &bundle, "r1", migrate);
                let what = format!("activation (tenants {tenants}, migrate {migrate})");
                assert_shell_syntax(&script, &what);
                assert_python_heredocs_compile(&script, &what);
            }
        }
    }

    /// The handler's restart when no gunicorn runs (before the first release, or before the
    /// first request): nothing switches and the script goes on to its end, where the handler
    /// clears its owed mark. `tandem restart` without a release says so and fails.
    #[test]
    fn a_restart_with_no_gunicorn_running_switches_nothing_and_goes_on() {
        let (dir, config, _) = shop_and_bundle(0);
        let bin = fake_systemctl(
            dir.path(),
            "echo \"systemctl $*\" >>\"$LOG\"\n[ \"$1\" != is-active ]\n",
        );
        let mut vars = Vars::for_paths(&config, &config.servers[1]);
        vars.paths.root = dir.path().join("srv").display().to_string();
        let log = dir.path().join("log");
        let run = |only_if_running: bool| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "set -e\n{}echo end",
                    switch_live_script(&vars, only_if_running)
                ))
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .env("LOG", &log)
                .output()
                .unwrap()
        };
        let handler = run(true);
        assert!(handler.status.success());
        assert_eq!(
            String::from_utf8_lossy(&handler.stdout),
            "gunicorn is not running: it starts with the new settings\nend\n"
        );
        let calls = std::fs::read_to_string(&log).unwrap();
        assert!(
            calls.lines().all(|c| c.starts_with("systemctl is-active")),
            "{calls}"
        );
        let restart = run(false);
        assert!(!restart.status.success());
        assert_eq!(
            String::from_utf8_lossy(&restart.stderr),
            "no release is live here\n"
        );
    }

    /// A switch that moves `current` points `previous` at the release it left (nginx serves
    /// that one's static files after the live one's); a switch of the live release to itself
    /// leaves `previous` alone. Run under sh with a `systemctl` whose service is live.
    /// The release's own work runs at nice 10 (`nice` alone prints the niceness it runs at).
    #[test]
    fn a_releases_work_yields_the_cpu_to_the_requests_served() {
        let (_dir, config, bundle) = shop_and_bundle(0);
        let vars = Vars::for_paths(&config, &config.servers[1]);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{}nice\n", release_preamble(&vars, &bundle, "r1")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "10\n", "{out:?}");
    }

    #[test]
    fn the_release_a_switch_leaves_becomes_previous() {
        let (dir, config, _) = shop_and_bundle(0);
        let bin = fake_systemctl(
            dir.path(),
            "[ \"$1\" != is-active ] || [ \"$3\" = gunicorn-shop.service ]\n",
        );
        let mut vars = Vars::for_paths(&config, &config.servers[1]);
        let root = dir.path().join("srv");
        vars.paths.root = root.display().to_string();
        for release in ["r0", "r1"] {
            std::fs::create_dir_all(root.join("releases").join(release)).unwrap();
        }
        std::os::unix::fs::symlink(root.join("releases/r0"), root.join("current")).unwrap();
        let switch = |to: &str| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(rollback_script(&vars, to))
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let link = |name: &str| std::fs::read_link(root.join(name)).unwrap();
            (link("current"), link("previous"))
        };
        let (r0, r1) = (root.join("releases/r0"), root.join("releases/r1"));
        assert_eq!(switch("r1"), (r1.clone(), r0.clone()));
        assert_eq!(
            switch("r1"),
            (r1.clone(), r0.clone()),
            "a restart moved previous"
        );
        assert_eq!(switch("r0"), (r0, r1));
    }

    /// The switch returns once the stopped unit's workers are gone (the health check after it
    /// must not reach them), not when its stop was merely asked for: a `systemctl` whose unit
    /// is `deactivating` with a main process that still has a child (a stand-in worker that
    /// takes a moment to finish its request).
    #[test]
    fn a_switch_waits_for_the_old_units_workers_not_its_master() {
        let (dir, config, _) = shop_and_bundle(0);
        let bin = fake_systemctl(
            dir.path(),
            "case \"$*\" in *MainPID*) echo \"$MASTER\";; *ActiveState*) echo deactivating;; esac\n",
        );
        let vars = Vars::for_paths(&config, &config.servers[1]);
        let (mut master, worker) = master_with_a_worker("sleep 0.5 & echo $!; wait");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{}stop_serving gunicorn-shop.service\n{}",
                switch_function(&vars),
                still_running(&worker)
            ))
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("MASTER", master.id().to_string())
            .output()
            .unwrap();
        master.wait().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "gone\n", "{out:?}");
    }

    /// gunicorn is READY before its workers fork (one by one, up to 0.1 s apart): the live
    /// unit stops only once the new unit's master has all its workers. Here the bridge's
    /// stand-in master forks its workers 0.1 s apart, and the fake `systemctl` writes down how
    /// many it had when the service was told to stop.
    #[test]
    fn the_live_unit_stops_once_the_new_units_workers_all_run() {
        let (dir, config, _) = shop_and_bundle(0);
        let vars = Vars::for_paths(&config, &config.servers[1]);
        let workers = vars.django.workers;
        assert!(workers >= 2, "the test needs workers that fork apart");
        let bin = fake_systemctl(
            dir.path(),
            &format!(
                "d=$(dirname \"$0\")\n\
                 case \"$*\" in\n\
                 'is-active --quiet gunicorn-shop.service') exit 0;;\n\
                 'is-active'*) exit 1;;\n\
                 'restart gunicorn-shop-bridge.service')\n\
                   sh -c 'for i in $(seq {workers}); do sleep 0.1; sleep 3 & done; wait' >/dev/null 2>&1 &\n\
                   echo $! >\"$d/bridge.pid\";;\n\
                 *'MainPID --value gunicorn-shop-bridge.service') cat \"$d/bridge.pid\";;\n\
                 *'MainPID --value gunicorn-shop.service') echo 0;;\n\
                 'stop --no-block gunicorn-shop.service')\n\
                   m=$(cat \"$d/bridge.pid\"); wc -w <\"/proc/$m/task/$m/children\" >\"$d/at-stop\";;\n\
                 esac\n"
            ),
        );
        let mut vars = vars;
        let root = dir.path().join("srv");
        vars.paths.root = root.display().to_string();
        for release in ["r0", "r1"] {
            std::fs::create_dir_all(root.join("releases").join(release)).unwrap();
        }
        std::os::unix::fs::symlink(root.join("releases/r0"), root.join("current")).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(rollback_script(&vars, "r1"))
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let at_stop = std::fs::read_to_string(bin.join("at-stop")).unwrap();
        assert_eq!(at_stop.trim(), workers.to_string(), "{out:?}");
    }

    /// A stand-in gunicorn master: `sh -c script`, which starts its worker in the background
    /// and prints its pid first; the master and the worker's pid.
    fn master_with_a_worker(script: &str) -> (std::process::Child, String) {
        use std::io::BufRead;
        let mut master = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut worker = String::new();
        std::io::BufReader::new(master.stdout.take().unwrap())
            .read_line(&mut worker)
            .unwrap();
        (master, worker.trim().to_string())
    }

    /// Shell that prints "running" when process `pid` still runs, "gone" when it has exited
    /// (a zombie included).
    fn still_running(pid: &str) -> String {
        format!(
            "state=$(cut -d')' -f2 /proc/{pid}/stat 2>/dev/null | cut -d' ' -f2)\n\
             case $state in ''|Z) echo gone;; *) echo running;; esac\n"
        )
    }

    /// gunicorn's master reaps its stopped workers only on its next tick (0.1 s, longer when
    /// busy): a worker that has exited and is not reaped yet serves nothing, and the switch
    /// goes on without waiting for the master. Here the master never reaps (it `exec`s a
    /// sleep), so a switch that waited for the zombie would give up only after its 1500 polls.
    #[test]
    fn a_switch_does_not_wait_for_the_master_to_reap_its_workers() {
        let (dir, config, _) = shop_and_bundle(0);
        let polls = dir.path().join("polls");
        let bin = fake_systemctl(
            dir.path(),
            "case \"$*\" in *MainPID*) echo \"$MASTER\";; \
             *ActiveState*) echo >>\"$POLLS\"; echo deactivating;; esac\n",
        );
        let vars = Vars::for_paths(&config, &config.servers[1]);
        let (mut master, worker) = master_with_a_worker("sleep 0.2 & echo $!; exec sleep 30");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{}stop_serving gunicorn-shop.service\n{}{}",
                switch_function(&vars),
                still_running(&worker),
                still_running(&master.id().to_string()),
            ))
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("MASTER", master.id().to_string())
            .env("POLLS", &polls)
            .output()
            .unwrap();
        master.kill().unwrap();
        master.wait().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "gone\nrunning\n",
            "the worker had exited and its master was still running: {out:?}"
        );
        let polled = std::fs::read_to_string(&polls).unwrap().lines().count();
        assert!(
            polled < 1500,
            "the switch waited for the master to reap its worker ({polled} polls)"
        );
    }

    /// go_live under sh with a `systemctl` that always succeeds and the real health check,
    /// which nothing answers here: the server goes back to the release it ran, the new one is
    /// removed, and the run says why.
    #[test]
    fn a_release_that_fails_its_health_check_is_put_back() {
        let (dir, mut config, bundle) = shop_and_bundle(0);
        config.django.health = crate::config::django::Health {
            path: "/up".into(),
            status: Some(299),
            timeout_seconds: 1,
        };
        let mut vars = Vars::for_paths(&config, &config.servers[1]);
        let root = dir.path().join("srv");
        vars.paths.root = root.display().to_string();
        for release in ["r0", "r1"] {
            std::fs::create_dir_all(root.join("releases").join(release)).unwrap();
        }
        std::os::unix::fs::symlink(root.join("releases/r0"), root.join("current")).unwrap();
        std::os::unix::fs::symlink(root.join("releases/rx"), root.join("previous")).unwrap();
        let bin = fake_systemctl(dir.path(), "exit 0\n");
        let script = format!(
            "{}{}{}{HEALTH_FUNCTION}{}",
            assignments(&[
                ("ROOT", &vars.paths.root),
                ("R", &format!("{}/releases/r1", vars.paths.root)),
                ("HASH", &bundle.hash),
                ("KEEP", "5"),
            ]),
            switch_function(&vars),
            health_assignments(&config),
            GO_LIVE_SH
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(
            std::fs::read_link(root.join("current")).unwrap(),
            root.join("releases/r0")
        );
        assert!(
            !root.join("releases/r1").exists(),
            "the failed release is removed"
        );
        assert_eq!(
            std::fs::read_link(root.join("previous")).unwrap(),
            root.join("releases/rx"),
            "previous must name the release before the live one again, not the removed one"
        );
        assert!(
            stderr.contains("health check failed: https://shop.example.com/up no answer"),
            "{stderr}"
        );
        assert!(
            stderr.contains("the new release failed its health check; running release:"),
            "{stderr}"
        );
    }

    /// `health` asks the site's first domain, then the tenant the check before going live
    /// named (none named: the first domain only; it failing: no more asked).
    #[test]
    fn the_health_check_asks_the_named_tenant_after_the_first_domain() {
        let run = |tenant: &str, apex_answers: bool| {
            let script = format!(
                "{HEALTH_FUNCTION}health_of() {{ echo \"asked $1\"; [ \"$1\" != shop.example.com ] || {apex_answers}; }}\n\
                 HEALTH_HOST=shop.example.com HEALTH_TENANT={}\nhealth; echo \"rc=$?\"\n",
                shell_word(tenant)
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        assert_eq!(
            run("acme.shop.example.com", true),
            "asked shop.example.com\nasked acme.shop.example.com\nrc=0\n"
        );
        assert_eq!(run("", true), "asked shop.example.com\nrc=0\n");
        assert_eq!(
            run("acme.shop.example.com", false),
            "asked shop.example.com\nrc=1\n"
        );
    }

    /// pip that fails with the build dependencies installed is retried without installing
    /// them again: the count of installed ones is read from the whole dpkg-query answer.
    #[test]
    fn the_build_counts_installed_build_dependencies() {
        let (_dir, config, bundle) = shop_and_bundle(0);
        let vars = Vars::for_paths(&config, &config.servers[1]);
        let script = build_script(&config, &vars, &bundle, "r1");
        let query = crate::resource::packages::probe(&BUILD_DEPENDENCIES.map(String::from));
        assert!(
            script.contains(&format!("build_deps_installed() {{ {query}; }}")),
            "{script}"
        );
        assert!(script.contains("BUILD_DEPS_COUNT=3\n"), "{script}");
        assert!(
            BUILD_SH
                .contains("\"$(build_deps_installed | grep -c ' ii')\" -ne \"$BUILD_DEPS_COUNT\"")
        );
        crate::resource::table::assert_shell_syntax(&script, "build");
    }

    #[test]
    fn release_state_and_previous() {
        let s = ReleaseState::parse(
            0,
            "current=20261127T060000Z-bbb\nhash=abc\nrelease=20261127T050000Z-aaa\nrelease=20261127T060000Z-bbb\n",
        );
        assert_eq!(s.current.as_deref(), Some("20261127T060000Z-bbb"));
        assert_eq!(s.current_hash.as_deref(), Some("abc"));
        assert_eq!(s.previous(), Some("20261127T050000Z-aaa"));
        assert_eq!(ReleaseState::parse(3, "").current, None);
    }

    /// With the code live, gunicorn's units as a cut-off switch leaves them (two running, or
    /// one on another release than `current`) plan the switch that finishes it; one on
    /// `current`, or none (socket activation), plans nothing. The probe's answer of a server
    /// from before the units took turns (no `gunicorn=` lines) plans nothing either.
    #[test]
    fn a_switch_cut_off_midway_is_finished_by_the_plan() {
        let (_dir, config, bundle) = shop_and_bundle(3);
        let vars = Vars::for_paths(&config, &config.servers[1]);
        let state = |serving: &str| {
            ReleaseState::parse(
                0,
                &format!(
                    "current=r2\nhash={}\nrelease=r1\nrelease=r2\n{serving}",
                    bundle.hash
                ),
            )
        };
        let planned = |serving: &str| -> Vec<String> {
            plan(true, &config, &vars, &bundle, &state(serving))
                .into_iter()
                .map(|c| c.summary)
                .collect()
        };
        assert!(planned("").is_empty());
        assert!(planned("gunicorn=gunicorn-shop.service inactive \ngunicorn=gunicorn-shop-bridge.service active r2\n").is_empty());
        assert_eq!(
            planned(
                "gunicorn=gunicorn-shop.service active r1\ngunicorn=gunicorn-shop-bridge.service inactive \n"
            ),
            ["~ gunicorn: one unit on r2 (gunicorn-shop.service runs r1, current is r2)"]
        );
        assert_eq!(
            planned(
                "gunicorn=gunicorn-shop.service active r2\ngunicorn=gunicorn-shop-bridge.service activating r2\n"
            ),
            [
                "~ gunicorn: one unit on r2 (gunicorn-shop.service and gunicorn-shop-bridge.service run at once)"
            ]
        );
        let heal = plan(
            true,
            &config,
            &vars,
            &bundle,
            &state("gunicorn=gunicorn-shop.service active r1\n"),
        );
        assert_eq!(heal[0].role, Phase::Release);
        assert!(heal[0].script.contains("switch_to \"$live\""));
        crate::resource::table::assert_shell_syntax(&probe(&vars), "release probe");
    }

    /// The plan names the migrations the live release lacks, on the server that runs them;
    /// nothing before the first release (every migration is new then, and nothing is live).
    #[test]
    fn the_migrations_a_release_brings_are_named() {
        let (_dir, config, bundle) = shop_and_bundle(3);
        let vars = Vars::for_paths(&config, &config.servers[1]);
        let live = ReleaseState::parse(
            0,
            "current=r0\nhash=old\nrelease=r0\nmigration=./entries/migrations/0001_initial.py\n",
        );
        assert_eq!(live.migrations, vec!["entries/migrations/0001_initial.py"]);
        let changes = plan(true, &config, &vars, &bundle, &live);
        let detail = changes[1].detail.as_deref().unwrap();
        assert!(
            detail.contains("  entries/migrations/0002_note.py"),
            "{detail}"
        );
        assert!(!detail.contains("0001_initial"), "{detail}");
        assert_eq!(plan(false, &config, &vars, &bundle, &live)[1].detail, None);
        let fresh = ReleaseState::parse(0, "current=\nhash=\n");
        assert_eq!(plan(true, &config, &vars, &bundle, &fresh)[1].detail, None);
        for path in ["a/migrations/0003_x.py", "migrations/0001_y.py"] {
            assert!(crate::app::bundle::is_migration(path), "{path}");
        }
        for path in [
            "a/migrations/__init__.py",
            "a/migrations/helpers.py",
            "a/0001_x.py",
        ] {
            assert!(!crate::app::bundle::is_migration(path), "{path}");
        }
    }

    #[test]
    fn release_ids_are_utc_times_then_the_hash() {
        let at: jiff::Timestamp = "2026-11-27T06:05:04Z".parse().unwrap();
        assert_eq!(
            release_id_at(at, "58205d04c74b560e"),
            "20261127T060504Z-58205d04c74b"
        );
        assert_eq!(
            release_id_at(jiff::Timestamp::UNIX_EPOCH, "ab"),
            "19700101T000000Z-ab"
        );
    }

    /// "desired bundle + probed release state -> exactly this change, or none".
    #[test]
    fn table() {
        let (_dir, config, bundle) = shop_and_bundle(3);
        let vars = Vars::for_paths(&config, &config.servers[1]);
        let live = |hash: &str| {
            format!(
                "current=20261127T060000Z-bbb\nhash={hash}\nrelease=20261127T050000Z-aaa\nrelease=20261127T060000Z-bbb\n"
            )
        };
        // The activation, after checking that the build comes first and is what it should be.
        let plan_for = |migrate: bool, status: i32, answer: &str| {
            let state = ReleaseState::parse(status, answer);
            let changes = plan(migrate, &config, &vars, &bundle, &state);
            for c in &changes {
                crate::resource::table::assert_shell_syntax(&c.script, &c.summary);
            }
            if let [build, activate] = changes.as_slice() {
                assert_eq!((build.role, activate.role), (Phase::Build, Phase::Release));
                assert!(
                    build.summary.starts_with("+ build release 20"),
                    "{}",
                    build.summary
                );
                assert!(build.script.contains("pip\" install") && !build.script.contains("manage"));
                assert!(build.script.contains(BUILT) && activate.script.contains(BUILT));
                assert!(!activate.script.contains("pip\" install"));
            }
            changes.last().cloned()
        };

        assert!(
            plan_for(true, 0, &live(&bundle.hash)).is_none(),
            "the bundle is live: nothing to do"
        );

        let first = plan_for(true, 3, "").expect("no release yet");
        assert!(
            first.summary.starts_with("+ release 20"),
            "{}",
            first.summary
        );
        assert!(
            first
                .summary
                .ends_with("-c0dec0dec0de (3 files; current: none)"),
            "{}",
            first.summary
        );
        assert!(
            first
                .script
                .contains("call_command('migrate', interactive=False)")
        );

        let other = plan_for(false, 0, &live("0ld")).expect("other code is live");
        assert!(
            other
                .summary
                .ends_with("(3 files; current: 20261127T060000Z-bbb)"),
            "{}",
            other.summary
        );
        assert!(
            !other.script.contains("call_command('migrate'")
                && other.script.contains("run by the first app server"),
            "only the first app server migrates"
        );
    }
}
