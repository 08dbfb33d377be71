//! The backup wing's checks: the repository reachable from the db server over its SSH link, a
//! backup recent enough for the schedule, WAL archiving working.

use crate::config::Server;
use crate::config::identifier::shell_word;
use crate::model::verification::Verification;

/// The three backup checks from `backup_script`'s output.
pub fn backup_checks(
    v: &mut Verification,
    db: &Server,
    backup: &crate::config::Backup,
    stanza: &str,
    out: &str,
) {
    use crate::backup::pgbackrest::{human_age, parse_info_output};
    let (info_part, archiver) = out.split_once("@archiver\n").unwrap_or((out, ""));
    let (now, info) = parse_info_output(info_part, stanza);
    let repository = &backup.repository;
    let unreachable_hint = format!(
        "from {db}: sudo -u postgres pgbackrest --stanza={stanza} info says why; is {repository} up, its sshd reachable from {db} (firewall?), and the key in place (tandem apply)?",
        db = db.name
    );
    match &info {
        Ok(info) => v.add(
            &db.name,
            "backup repository reachable",
            info.code == crate::backup::pgbackrest::STATUS_OK
                || info.code == crate::backup::pgbackrest::STATUS_NO_BACKUP,
            format!("{repository}: {}", info.message),
            &unreachable_hint,
        ),
        Err(e) => v.add(
            &db.name,
            "backup repository reachable",
            false,
            format!("{repository}: {e}"),
            &unreachable_hint,
        ),
    }
    let max_age = backup.schedule.max_age_seconds();
    let latest = info.as_ref().ok().and_then(|i| i.latest());
    v.add(
        &db.name,
        "recent backup",
        latest.is_some_and(|b| now - b.stop <= max_age),
        match latest {
            Some(b) => format!("newest: {} backup {} ago", b.kind, human_age(now - b.stop)),
            None if info.is_err() => "unknown: the repository did not answer".into(),
            None => "no backup in the repository".into(),
        },
        &format!(
            "the {} schedule allows {}; see `tandem logs --server {repository} backup`, take one with `tandem backup`",
            backup.schedule.on_calendar(),
            human_age(max_age)
        ),
    );
    let numbers: Vec<&str> = archiver.split_whitespace().collect();
    let (archived, failed) = match numbers.as_slice() {
        [a, f, _] => (a.parse::<i64>().unwrap_or(0), f.parse::<i64>().unwrap_or(0)),
        _ => (0, -1),
    };
    v.add(
        &db.name,
        "WAL archiving works",
        failed >= 0 && failed <= archived,
        match numbers.as_slice() {
            [_, "0", _] => "no archive failure".to_string(),
            [_, _, wal] if failed > archived => format!("the last attempt failed ({wal})"),
            [_, _, _] => "failures before the last success only".to_string(),
            _ => format!("pg_stat_archiver unreadable: {}", archiver.trim()),
        },
        &format!(
            "PostgreSQL's log on {} says why archive-push fails (`tandem logs --server {} postgresql`); until it works, WAL piles up in pg_wal",
            db.name, db.name
        ),
    );
}

/// On the db server: pgBackRest's view of the repository (over its SSH link, as archiving
/// uses it), and PostgreSQL's archiver statistics.
pub fn backup_script(stanza: &str) -> String {
    let sql = "select coalesce(extract(epoch from last_archived_time)::bigint, 0) || ' ' || \
               coalesce(extract(epoch from last_failed_time)::bigint, 0) || ' ' || \
               coalesce(last_failed_wal, '-') from pg_stat_archiver";
    format!(
        "( {} )\necho @archiver\n{}\n",
        crate::backup::pgbackrest::info_script(stanza).replace('\n', "\n  "),
        crate::postgres::as_postgres(&format!("-Atq -c {}", shell_word(sql)))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backup checks' (name, ok, detail) for `backup_script`'s output `out`, hourly.
    fn backup_results(out: &str) -> Vec<(String, bool, String)> {
        let db = crate::resource::table::db_server();
        let backup = crate::config::Backup {
            repository: "vault".into(),
            path: "/var/lib/pgbackrest".into(),
            encryption_key: crate::config::PasswordSource::Env("K".into()),
            schedule: crate::config::backup::Schedule::Hourly,
            full_every_days: 7,
            keep_full: 2,
        };
        let mut v = Verification::default();
        backup_checks(&mut v, &db, &backup, "shop", out);
        v.checks
            .into_iter()
            .map(|c| (c.name, c.ok, c.detail))
            .collect()
    }

    fn info(code: i64, stop: i64) -> String {
        format!(
            "[{{\"name\":\"shop\",\"status\":{{\"code\":{code},\"message\":\"m\"}},\"backup\":[{{\"label\":\"l\",\"type\":\"full\",\"error\":false,\"timestamp\":{{\"start\":1,\"stop\":{stop}}},\"info\":{{\"size\":1}}}}]}}]"
        )
    }

    #[test]
    fn backups_pass_when_reachable_recent_and_archiving() {
        let out = format!("now=10000\n{}\n@archiver\n9000 0 -\n", info(0, 9000));
        let results = backup_results(&out);
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(|(_, ok, _)| *ok), "{results:#?}");
    }

    #[test]
    fn backups_fail_when_stale_unreachable_or_archiving_fails() {
        // Older than hourly's 2 h.
        let stale = backup_results(&format!(
            "now=100000\n{}\n@archiver\n99000 0 -\n",
            info(0, 1000)
        ));
        assert!(!stale[1].1 && stale[0].1 && stale[2].1, "{stale:#?}");
        // pgBackRest cannot reach the repository: no JSON, its error.
        let unreachable = backup_results(
            "now=5\nERROR: [105]: remote-0 process on 'vault' terminated unexpectedly\n@archiver\n4 0 -\n",
        );
        assert!(!unreachable[0].1 && !unreachable[1].1, "{unreachable:#?}");
        assert!(unreachable[0].2.contains("terminated unexpectedly"));
        assert!(unreachable[1].2.contains("did not answer"));
        // The last archive attempt failed after the last success.
        let failing = backup_results(&format!(
            "now=10000\n{}\n@archiver\n9000 9500 000000010000000000000007\n",
            info(0, 9000)
        ));
        assert!(!failing[2].1, "{failing:#?}");
        assert!(failing[2].2.contains("000000010000000000000007"));
        // A failure before the last success is history.
        let recovered = backup_results(&format!(
            "now=10000\n{}\n@archiver\n9600 9500 000000010000000000000007\n",
            info(0, 9000)
        ));
        assert!(recovered[2].1, "{recovered:#?}");
    }
}
