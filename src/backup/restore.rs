//! `tandem backup` and `tandem restore`: the scripts they run, built here so that they are
//! tested without hosts.
//!
//! A restore never writes into the running cluster's directory. pgBackRest restores into a
//! staging directory beside it; by default a scratch PostgreSQL then recovers there (on a
//! local socket, port `SCRATCH_PORT`) for inspection. In place, the recovered staging
//! directory takes the cluster's place only once pgBackRest has written it, and the old
//! directory is kept beside it; if the cluster then fails to recover, the old one is put back.
//! So a restore that fails leaves the running database as it was.

use anyhow::bail;

use crate::backup::pgbackrest::as_postgres;
use crate::config::identifier::shell_word;
use crate::engine::vars::Vars;

/// The scratch cluster's port (local socket only).
pub const SCRATCH_PORT: u16 = 5439;

/// How long a cluster may take to replay the archive before the restore is called failed.
const RECOVERY_SECONDS: u32 = 600;

/// Where the database goes back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The end of the archive: everything committed before the restore began.
    Latest,
    /// A moment (UTC, as PostgreSQL reads it: `2026-11-29 23:38:56.712433+00`).
    Time(String),
}

impl Target {
    /// Reads `--time`: an RFC 3339 / ISO 8601 moment with its offset (`2026-11-29 23:38:56+00`,
    /// `2026-11-29T23:38:56Z`, PostgreSQL's `now()` as printed). Anything else is refused, so
    /// no text of the operator's reaches a shell or pgBackRest unparsed.
    pub fn time(text: &str) -> anyhow::Result<Target> {
        let normalized = normalize_offset(text.trim());
        let Ok(at) = normalized.parse::<jiff::Timestamp>() else {
            bail!(
                "--time `{text}` is not a moment with its offset: write e.g. `2026-11-29 23:38:56+00` (PostgreSQL's `select now()` prints one)"
            );
        };
        Ok(Target::Time(
            at.strftime("%Y-%m-%d %H:%M:%S%.f+00").to_string(),
        ))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Latest => f.write_str("the latest archived moment"),
            Target::Time(t) => f.write_str(t),
        }
    }
}

/// The running database's newest WAL pushed to the repository (`pgbackrest check` switches to
/// a new segment and waits until it is archived), run as postgres.
pub fn archive_newest(stanza: &str) -> String {
    as_postgres(&format!(
        "--stanza={} --log-level-console=warn check",
        shell_word(stanza)
    ))
}

/// The data directory an in-place restore kept (its `kept=<dir>` line), "" when none.
pub fn kept_dir(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("kept=").map(str::to_string))
        .unwrap_or_default()
}

/// PostgreSQL prints offsets as `+00` or `+05:30`; RFC 3339 wants `+00:00`.
fn normalize_offset(text: &str) -> String {
    let bytes = text.as_bytes();
    let n = bytes.len();
    if n >= 3
        && (bytes[n - 3] == b'+' || bytes[n - 3] == b'-')
        && text[n - 2..].chars().all(|c| c.is_ascii_digit())
    {
        format!("{text}:00")
    } else {
        text.to_string()
    }
}

/// What `restore_script` needs from the config and the db server.
pub struct Restore<'a> {
    pub vars: &'a Vars,
    pub target: &'a Target,
    pub in_place: bool,
}

impl Restore<'_> {
    fn stanza(&self) -> String {
        shell_word(&self.vars.backup.stanza)
    }

    /// The scratch cluster's transient unit.
    pub fn scratch_unit(&self) -> String {
        format!("tandem-restore-{}", self.vars.project)
    }

    /// What tandem runs on the db server: the restore as a transient systemd unit, so that a
    /// tandem killed or cut off midway cannot stop it between moving the cluster's directory
    /// aside and putting one back; tandem waits for it. (`KillMode=process`: see the backup
    /// service's unit, pgBackRest's ssh may outlive it by a moment.) Its log goes to stderr; an in-place
    /// restore prints `kept=<dir>` (the cluster's directory as it was) on stdout.
    pub fn detached_script(&self) -> String {
        self.detached(&self.script())
    }

    /// `detached_script` for a cluster's primary, restored in place: Patroni is stopped (its
    /// PostgreSQL with it; the standby's was stopped before) and its record of the cluster in
    /// etcd removed (it names the old history and WAL position, behind which Patroni would not
    /// lead), then the restore runs as on a single db server, under Debian's unit. Patroni
    /// takes the recovered cluster over afterwards as it took the first one over (the seed).
    pub fn detached_cluster_script(&self, spec: &crate::model::desired::PatroniSpec) -> String {
        self.detached(&format!("{}{}", cluster_prelude(spec), self.script()))
    }

    /// `body` run as a transient unit that tandem waits for (see `detached_script`).
    fn detached(&self, body: &str) -> String {
        let name = &self.vars.project;
        let file = format!("/var/lib/tandem/restore-{name}");
        // A unit name per run: a finished run's unit may linger a moment before it is
        // collected, and must not block the next restore.
        let jobs = shell_word(&format!("tandem-restore-job-{name}-*"));
        let job = format!("tandem-restore-job-{}-$(date +%s%N)", shell_word(name));
        format!(
            "set -u\numask 077\nmkdir -p /var/lib/tandem\n\
             if systemctl list-units --plain --no-legend --state=activating,active {jobs} | grep -q .; then echo 'tandem restore: another restore is running on this server' >&2; exit 1; fi\n\
             {write}\n\
             rm -f {log}\n\
             systemd-run --quiet --wait --collect --unit=\"{job}\" -p KillMode=process -p StandardOutput=file:{file}.log -p StandardError=file:{file}.log /bin/sh {script}\n\
             rc=$?\n\
             cat {log} >&2\n\
             grep '^kept=' {log}\n\
             exit $rc\n",
            write = crate::resource::script::payload(
                body.as_bytes(),
                &format!("> {}", shell_word(&format!("{file}.sh")))
            ),
            log = shell_word(&format!("{file}.log")),
            script = shell_word(&format!("{file}.sh")),
        )
    }

    /// The whole restore, run as root on the db server. It prints `kept=<dir>` for an
    /// in-place restore (the cluster's directory as it was).
    pub fn script(&self) -> String {
        let stanza = self.stanza();
        let unit = self.scratch_unit();
        let target = match self.target {
            Target::Latest => String::new(),
            Target::Time(at) => format!(
                " --type=time --target={} --target-action=promote",
                shell_word(at)
            ),
        };
        // A scratch cluster must not push its own timeline into the repository.
        let archive = if self.in_place {
            ""
        } else {
            " --archive-mode=off"
        };
        let mut s = format!(
            r#"set -eu
export LC_ALL=C
# The cluster's version as installed (Debian's layout: /var/lib/postgresql/<version>/main).
version=$({installed})
[ -n "$version" ] || {{ echo "tandem restore: no PostgreSQL cluster on this server" >&2; exit 1; }}
main={main}
staging={staging}
unit={unit}
pg() {{ runuser -u postgres -- psql -XAtq "$@"; }}
fail() {{ echo "tandem restore: $*" >&2; exit 1; }}
# The WAL written so far goes to the repository first: `check` switches to a new segment and
# waits until the running cluster has archived it. A cluster that cannot (a rebuilt server
# whose fresh cluster the repository does not know, archiving broken) is warned about: the
# restore then has what the repository has, and the directory it replaces is kept.
if pg -c 'select 1' >/dev/null 2>&1; then
  {check} >&2 || echo "tandem restore: warning: the running database's newest WAL did not reach the repository (above); restoring what the repository has" >&2
fi
systemctl stop "$unit" 2>/dev/null || true
systemctl reset-failed "$unit" 2>/dev/null || true
rm -rf "$staging"
install -d -o postgres -g postgres -m 0700 "$staging"
if ! {restore} >&2; then
  rm -rf "$staging"
  fail "pgBackRest could not restore (see above): nothing was changed"
fi
recovered() {{
  # $1: psql's connection options. Waits until recovery has ended (the cluster promoted).
  i=0
  while [ $i -lt {ticks} ]; do
    [ "$(pg $1 -c 'select pg_is_in_recovery()' 2>/dev/null)" = f ] && return 0
    "$2" || return 1
    sleep 0.5; i=$((i + 1))
  done
  return 1
}}
"#,
            check = archive_newest(&self.vars.backup.stanza),
            restore = as_postgres(&format!(
                "--stanza={stanza} --pg1-path=\"$staging\" --log-level-console=warn{target}{archive} restore"
            )),
            ticks = RECOVERY_SECONDS * 2,
            installed = crate::model::platform::INSTALLED_VERSION,
            main = crate::model::platform::postgres_data_dir("$version"),
            staging = crate::model::platform::postgres_restore_staging("$version"),
        );
        if self.in_place {
            s.push_str(
                r#"# The staging directory becomes the cluster: restore_command must not name it.
sed -i "s# --pg1-path=$staging##" "$staging/postgresql.auto.conf"
kept="$main.before-restore-$(date -u +%Y%m%dT%H%M%SZ)"
systemctl stop postgresql@$version-main
mv "$main" "$kept"
mv "$staging" "$main"
running() { systemctl is-active --quiet postgresql@$version-main; }
if ! systemctl start postgresql@$version-main || ! recovered "" running; then
  journalctl -u postgresql@$version-main -n 20 --no-pager -o cat >&2 || true
  tail -n 20 /var/log/postgresql/postgresql-$version-main.log >&2 || true
  systemctl stop postgresql@$version-main || true
  mv "$main" "$staging.failed-$(date -u +%Y%m%dT%H%M%SZ)"
  mv "$kept" "$main"
  systemctl start postgresql@$version-main
  fail "the restored cluster did not recover (its log above); the database was put back as it was"
fi
# The recovery's settings (pgBackRest's, in postgresql.auto.conf) are spent once it promoted:
# left there, they would steer a later recovery, e.g. this server's as a cluster's standby.
pg -c 'ALTER SYSTEM RESET restore_command' -c 'ALTER SYSTEM RESET recovery_target_time' \
  -c 'ALTER SYSTEM RESET recovery_target_action' >/dev/null || true
echo "kept=$kept"
"#,
            );
        } else {
            s.push_str(&format!(
                r#"# A scratch cluster: its own port, local socket only, Debian's settings kept out.
printf '%s\n' "port = {port}" "listen_addresses = ''" "unix_socket_directories = '/var/run/postgresql'" > "$staging/postgresql.conf"
printf '%s\n' 'local all all peer' > "$staging/pg_hba.conf"
chown postgres:postgres "$staging/postgresql.conf" "$staging/pg_hba.conf"
systemd-run --quiet --unit="$unit" --uid=postgres --gid=postgres -p Type=notify -p TimeoutStartSec=infinity {bin}/postgres -D "$staging"
alive() {{ [ "$(systemctl show -p ActiveState --value "$unit")" != failed ] && [ "$(systemctl show -p ActiveState --value "$unit")" != inactive ]; }}
if ! recovered "-p {port}" alive; then
  journalctl -u "$unit" -n 20 --no-pager -o cat >&2 || true
  systemctl stop "$unit" 2>/dev/null || true
  fail "the scratch cluster did not recover (its log above); the running database was not touched"
fi
"#,
                port = SCRATCH_PORT,
                bin = crate::model::platform::postgres_bin_dir("$version"),
            ));
        }
        s
    }
}

/// The etcd key an in-place restore of cluster `scope` holds while the cluster has no record:
/// the member whose data must seed it again (join.sh refuses to seed from another).
pub fn restoring_key(scope: &str) -> String {
    format!("/tandem/{scope}/restoring")
}

/// Before a cluster's primary is restored in place: its Patroni stopped (PostgreSQL with it),
/// the restore's marker put in etcd (`restoring_key`: this member seeds the cluster again,
/// even when a run cut off here leaves the rebuild to a later `apply`) and the cluster's
/// record removed, so that Patroni takes the restored data over as a new cluster's seed.
pub fn cluster_prelude(spec: &crate::model::desired::PatroniSpec) -> String {
    format!(
        "systemctl stop {unit}\n\
         ETCDCTL_API=3 etcdctl --endpoints={etcd} --dial-timeout=2s --command-timeout=10s put {marker} {member} >/dev/null || {{ echo {why} >&2; exit 1; }}\n\
         ETCDCTL_API=3 etcdctl --endpoints={etcd} --dial-timeout=2s --command-timeout=10s del --prefix {prefix} >/dev/null || {{ echo {why} >&2; exit 1; }}\n",
        unit = shell_word(&spec.unit),
        etcd = shell_word(&spec.etcd_endpoints),
        marker = shell_word(&restoring_key(&spec.scope)),
        member = shell_word(&spec.member),
        prefix = shell_word(&format!("/service/{}/", spec.scope)),
        why = shell_word(&format!(
            "tandem restore: could not remove cluster {}'s record from etcd (is a majority of its members up?)",
            spec.scope
        )),
    )
}

/// `systemctl stop`/`start` of the app's gunicorn and background processes around an
/// in-place restore (the socket too, so no request starts it again meanwhile).
pub fn app_units(vars: &Vars, start: bool) -> String {
    let socket = shell_word(&vars.units.socket);
    let service = shell_word(&vars.units.service);
    // Whichever of gunicorn's two units serves stops (they take turns); the service starts.
    let bridge = shell_word(&vars.units.bridge);
    // The background processes stop with gunicorn (PartOf=) but are not started by it.
    let procs = vars.processes.shell_units();
    match start {
        false => format!("systemctl stop {socket} {service} {bridge} {procs}\n"),
        true => format!("systemctl start {socket} {service} {procs}\n"),
    }
}

/// Starts the backup service on the repository server and waits for it.
pub fn backup_now(vars: &Vars) -> String {
    crate::resource::service::run_oneshot(&vars.backup.service)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::table::assert_shell_syntax;

    fn vars() -> Vars {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::testing::shop(dir.path());
        Vars::for_paths(&config, config.db_server())
    }

    #[test]
    fn times_are_read_with_their_offset_and_written_in_utc() {
        for (given, written) in [
            (
                "2026-11-29 23:38:56.712433+00",
                "2026-11-29 23:38:56.712433+00",
            ),
            ("2026-11-29T23:38:56Z", "2026-11-29 23:38:56+00"),
            ("2026-11-30 01:38:56+02", "2026-11-29 23:38:56+00"),
            ("2026-11-30 05:08:56+05:30", "2026-11-29 23:38:56+00"),
        ] {
            assert_eq!(
                Target::time(given).unwrap(),
                Target::Time(written.into()),
                "{given}"
            );
        }
        for bad in [
            "2026-11-29 23:38:56",
            "yesterday",
            "2026-11-29 23:38:56+00'; rm -rf /",
            "",
        ] {
            let err = Target::time(bad).unwrap_err().to_string();
            assert!(err.contains("with its offset"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_scripts_parse_and_keep_the_running_cluster_out_of_harms_way() {
        let vars = vars();
        for (target, in_place) in [
            (Target::Latest, false),
            (Target::Time("2026-11-29 23:38:56+00".into()), false),
            (Target::Time("2026-11-29 23:38:56+00".into()), true),
        ] {
            let script = Restore {
                vars: &vars,
                target: &target,
                in_place,
            }
            .script();
            assert_shell_syntax(&script, "restore");
            let detached = Restore {
                vars: &vars,
                target: &target,
                in_place,
            }
            .detached_script();
            assert_shell_syntax(&detached, "restore, detached");
            assert!(
                detached.contains("systemd-run --quiet --wait"),
                "{detached}"
            );
            assert!(script.contains("--pg1-path=\"$staging\""), "{script}");
            assert_eq!(script.contains("--archive-mode=off"), !in_place);
            assert_eq!(script.contains("mv \"$kept\" \"$main\""), in_place);
            assert_eq!(
                script.contains("--target='2026-11-29 23:38:56+00'"),
                target != Target::Latest,
                "{script}"
            );
        }
        // A cluster's primary: Patroni stopped and its record in etcd removed before the
        // restore (which then runs as on one db server).
        let dir = tempfile::tempdir().unwrap();
        let cluster =
            crate::config::testing::shop_with(dir.path(), crate::config::testing::CLUSTER, "");
        let member = Vars::new(
            &cluster,
            &cluster.servers[0],
            &crate::engine::vars::HostFacts::assumed(),
            crate::engine::vars::Secrets::redacted(&cluster),
        );
        let spec = crate::cluster::member_spec(&cluster, &member).unwrap();
        let target = Target::Latest;
        let restore = Restore {
            vars: &member,
            target: &target,
            in_place: true,
        };
        let script = restore.detached_cluster_script(&spec);
        assert_shell_syntax(&script, "cluster restore, detached");
        let prelude = cluster_prelude(&spec);
        assert_shell_syntax(&prelude, "cluster prelude");
        assert!(
            prelude.starts_with("systemctl stop patroni@15-main.service\n")
                && prelude.contains(" del --prefix /service/shop/ "),
            "{prelude}"
        );
        // The marker goes in before the record goes: never a moment without either.
        let marker = prelude
            .find(&format!(" put /tandem/shop/restoring {} ", spec.member))
            .expect(&prelude);
        assert!(
            marker < prelude.find(" del --prefix ").unwrap(),
            "{prelude}"
        );
        assert_shell_syntax(&app_units(&vars, true), "app units");
        assert_shell_syntax(&backup_now(&vars), "backup now");
    }
}
