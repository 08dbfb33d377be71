//! tandem's PostgreSQL settings hold even after a hand edit: a setting of its conf.d drop-ins
//! that the server takes from a file read later (postgresql.auto.conf, which `ALTER SYSTEM`
//! writes; a line below the conf.d include in postgresql.conf or a file it includes) is taken
//! out there, and the reload handler reloads or restarts as `pending_restart` says. A value of
//! the operator's own belongs in `database.settings`.

use super::{Context, psql_script};
use crate::config::identifier::shell_word;
use crate::model::playbook::Phase;
use crate::postgres;
use crate::resource::postgres_facts::{LiveSetting, overridden_settings};
use crate::resource::script;

/// The handler in playbooks/db.yml that applies the drop-ins' settings.
const RELOAD: &str = "reload postgresql";

pub fn plan(ctx: &mut Context) {
    for setting in overridden_settings(ctx.desired, ctx.facts) {
        let Some((summary, script)) = take_out(&setting, ctx.run_id) else {
            continue;
        };
        let c = ctx.push(summary, None, script);
        c.role = Phase::Db;
        c.step = "tandem's settings not overridden by a file read after conf.d".into();
        c.notify = vec![RELOAD.to_string()];
    }
}

/// The change that takes `setting` out of the file that overrides tandem's value.
fn take_out(setting: &LiveSetting, run_id: &str) -> Option<(String, String)> {
    let name = &setting.name;
    // Names come from tandem's own drop-ins; a name that is not plain stays untouched.
    if !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return None;
    }
    if setting.source.ends_with("/postgresql.auto.conf") {
        return Some((
            format!("~ ALTER SYSTEM RESET {name} (postgresql.auto.conf overrides tandem's conf.d)"),
            psql_script(None, &format!("ALTER SYSTEM RESET {name};")),
        ));
    }
    let line = setting.line?;
    // The line must still be the one the probe saw: a file edited since is left alone. The
    // backup is `script::backup`'s path, but kept when there is one already: two lines of one
    // file taken out in a run keep the file as it was before the run.
    let script = format!(
        "set -e\numask 077\nF={file}\n\
         if ! sed -n '{line}p' -- \"$F\" | grep -Eq '^[[:space:]]*{name}([[:space:]]*=|[[:space:]])'; then \
         echo \"line {line} of $F no longer sets {name} (edited since the plan): run tandem plan again\" >&2; exit 1; fi\n\
         BACKUP=\"{state}/backups/{run}/$(printf %s \"$F\" | tr / %)\"\n\
         mkdir -p \"$(dirname \"$BACKUP\")\"\n[ -e \"$BACKUP\" ] || cp -a -- \"$F\" \"$BACKUP\"\n\
         sed -i '{line}s/^/{prefix}/' -- \"$F\"\n",
        file = shell_word(&setting.source),
        state = script::STATE_DIR,
        run = shell_word(run_id),
        prefix = postgres::OVERRIDE_DISABLED_PREFIX,
    );
    Some((
        format!(
            "~ {}: comment out line {line} ({name} overrides tandem's conf.d)",
            setting.source
        ),
        script,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(source: &str, line: Option<u32>) -> LiveSetting {
        LiveSetting {
            name: "shared_buffers".into(),
            value: "64MB".into(),
            context: "postmaster".into(),
            source: source.into(),
            line,
        }
    }

    #[test]
    fn alter_system_is_reset_and_a_later_line_commented_out_if_it_is_still_there() {
        let (summary, script) = take_out(
            &setting("/var/lib/postgresql/15/main/postgresql.auto.conf", Some(3)),
            "r1",
        )
        .unwrap();
        assert!(
            summary.starts_with("~ ALTER SYSTEM RESET shared_buffers"),
            "{summary}"
        );
        assert_eq!(
            script,
            psql_script(None, "ALTER SYSTEM RESET shared_buffers;")
        );

        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("postgresql.conf");
        let text =
            "shared_buffers = 128MB\ninclude_dir = 'conf.d'\nshared_buffers = '64MB' # mine\n";
        std::fs::write(&conf, text).unwrap();
        let (summary, script) = take_out(&setting(conf.to_str().unwrap(), Some(3)), "r1").unwrap();
        assert!(summary.contains("comment out line 3"), "{summary}");
        let script = script.replace(script::STATE_DIR, dir.path().to_str().unwrap());
        let run = |script: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap()
        };
        let first = run(&script);
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        let after = std::fs::read_to_string(&conf).unwrap();
        assert_eq!(
            after,
            format!(
                "shared_buffers = 128MB\ninclude_dir = 'conf.d'\n{}shared_buffers = '64MB' # mine\n",
                postgres::OVERRIDE_DISABLED_PREFIX
            )
        );
        let again = run(&script);
        assert!(
            !again.status.success(),
            "a line that changed since is left alone"
        );
        assert!(String::from_utf8_lossy(&again.stderr).contains("no longer sets shared_buffers"));
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), after);
    }
}
