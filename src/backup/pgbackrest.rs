//! What pgBackRest says about a stanza (`pgbackrest info --output=json`), read once for the
//! plan, `verify` and `tandem backup list`; and the shell that asks it.

use serde::Serialize;

use crate::config::identifier::shell_word;

/// pgBackRest's `info` status codes (its documentation's list).
pub const STATUS_OK: i64 = 0;
pub const STATUS_MISSING_STANZA_PATH: i64 = 1;
pub const STATUS_NO_BACKUP: i64 = 2;
pub const STATUS_MISSING_STANZA_DATA: i64 = 3;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Info {
    /// The stanza's status: 0 ok, 1/3 missing, 2 no valid backup, others errors.
    pub code: i64,
    pub message: String,
    /// Oldest first, as pgBackRest lists them.
    pub backups: Vec<BackupSet>,
    /// The oldest and newest WAL segment in the archive, when there is one.
    pub wal: Option<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackupSet {
    pub label: String,
    /// full, diff or incr.
    pub kind: String,
    /// Seconds since the epoch.
    pub start: i64,
    pub stop: i64,
    /// The database's size, and what this backup added to the repository (compressed).
    pub size: u64,
    pub repository_delta: u64,
    pub error: bool,
}

impl Info {
    /// The stanza exists in the repository (with or without backups).
    pub fn stanza_exists(&self) -> bool {
        !matches!(
            self.code,
            STATUS_MISSING_STANZA_PATH | STATUS_MISSING_STANZA_DATA
        )
    }

    /// The newest backup that completed without error.
    pub fn latest(&self) -> Option<&BackupSet> {
        self.backups.iter().rev().find(|b| !b.error)
    }
}

/// Reads `stanza`'s entry from `info --output=json`.
pub fn parse_info(json: &str, stanza: &str) -> Result<Info, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("pgbackrest info is not JSON: {e}"))?;
    let entry = value
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == stanza))
        .ok_or_else(|| format!("pgbackrest info does not list stanza {stanza}"))?;
    let number = |v: &serde_json::Value| v.as_i64().unwrap_or(0);
    let backups = entry["backup"]
        .as_array()
        .map(|sets| {
            sets.iter()
                .map(|b| BackupSet {
                    label: b["label"].as_str().unwrap_or("").to_string(),
                    kind: b["type"].as_str().unwrap_or("").to_string(),
                    start: number(&b["timestamp"]["start"]),
                    stop: number(&b["timestamp"]["stop"]),
                    size: b["info"]["size"].as_u64().unwrap_or(0),
                    repository_delta: b["info"]["repository"]["delta"].as_u64().unwrap_or(0),
                    error: b["error"].as_bool().unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default();
    let wal = entry["archive"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(|a| {
            Some((
                a["min"].as_str()?.to_string(),
                a["max"].as_str()?.to_string(),
            ))
        });
    Ok(Info {
        code: entry["status"]["code"].as_i64().unwrap_or(-1),
        message: entry["status"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        backups,
        wal,
    })
}

/// pgbackrest run as postgres (the owner of the repository and of the data), from a root
/// script.
pub fn as_postgres(args: &str) -> String {
    format!("runuser -u postgres -- pgbackrest {args}")
}

/// Prints `now=<epoch>` and then `info --output=json` of `stanza` (exit status 0 either way
/// when pgBackRest answered; 3 when it is not installed).
pub fn info_script(stanza: &str) -> String {
    format!(
        "command -v pgbackrest >/dev/null 2>&1 || exit 3\necho \"now=$(date +%s)\"\n{} 2>&1\n",
        as_postgres(&format!(
            "--stanza={} --output=json info",
            shell_word(stanza)
        ))
    )
}

/// Splits `info_script`'s output into the host's clock and the info (or pgBackRest's error
/// text when it printed no JSON).
pub fn parse_info_output(stdout: &str, stanza: &str) -> (i64, Result<Info, String>) {
    let (first, rest) = stdout.split_once('\n').unwrap_or((stdout, ""));
    let now = first
        .strip_prefix("now=")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let info = match rest.trim_start().starts_with('[') {
        true => parse_info(rest, stanza),
        false => Err(last_line(rest)),
    };
    (now, info)
}

/// The line that says what went wrong: pgBackRest's `ERROR: [nnn]: ...`, else the last one.
pub fn last_line(text: &str) -> String {
    text.lines()
        .rfind(|l| l.contains("ERROR"))
        .or_else(|| text.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("no output")
        .trim()
        .to_string()
}

/// `1.2 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

/// `3 h 5 min`, `2 d 4 h`, `40 s`.
pub fn human_age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pgBackRest 2.45's answer for a stanza with one full and one incremental backup
    /// (captured in the lab, trimmed).
    pub const TWO_BACKUPS: &str = r#"[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000006","min":"000000010000000000000001"}],"backup":[{"archive":{"start":"000000010000000000000002","stop":"000000010000000000000002"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,"info":{"delta":22900000,"repository":{"delta":2990000,"size":2990000},"size":22900000},"label":"20261129-233847F","lsn":{"start":"0/2000028","stop":"0/2000138"},"prior":null,"reference":null,"timestamp":{"start":1795996727,"stop":1795996731},"type":"full"},{"archive":{"start":"000000010000000000000005","stop":"000000010000000000000005"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,"info":{"delta":8192,"repository":{"delta":512,"size":2990000},"size":22900000},"label":"20261129-233847F_20261129-234500I","lsn":{"start":"0/5000028","stop":"0/5000100"},"prior":"20261129-233847F","reference":["20261129-233847F"],"timestamp":{"start":1795997100,"stop":1795997102},"type":"incr"}],"cipher":"aes-256-cbc","db":[{"id":1,"repo-key":1,"system-id":7442,"version":"15"}],"name":"shop","repo":[{"cipher":"aes-256-cbc","key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]"#;

    #[test]
    fn reads_the_backups_and_the_archive() {
        let info = parse_info(TWO_BACKUPS, "shop").unwrap();
        assert_eq!(info.code, STATUS_OK);
        assert_eq!(info.backups.len(), 2);
        let latest = info.latest().unwrap();
        assert_eq!(latest.kind, "incr");
        assert_eq!(latest.stop, 1795997102);
        assert_eq!(info.backups[0].size, 22_900_000);
        assert_eq!(
            info.wal,
            Some((
                "000000010000000000000001".into(),
                "000000010000000000000006".into()
            ))
        );
    }

    #[test]
    fn a_missing_stanza_and_a_stanza_without_backups() {
        let missing = r#"[{"archive":[],"backup":[],"db":[],"name":"shop","repo":[{"cipher":"aes-256-cbc","key":1,"status":{"code":1,"message":"missing stanza path"}}],"status":{"code":1,"lock":{"backup":{"held":false}},"message":"missing stanza path"}}]"#;
        let info = parse_info(missing, "shop").unwrap();
        assert!(!info.stanza_exists());
        assert!(info.latest().is_none());
        let empty = missing
            .replace("\"code\":1", "\"code\":2")
            .replace("missing stanza path", "no valid backups");
        let info = parse_info(&empty, "shop").unwrap();
        assert!(info.stanza_exists());
        assert_eq!(info.code, STATUS_NO_BACKUP);
        assert!(parse_info(TWO_BACKUPS, "other").is_err());
    }

    #[test]
    fn the_output_with_the_clock_or_an_error() {
        let (now, info) = parse_info_output(&format!("now=1795997200\n{TWO_BACKUPS}\n"), "shop");
        assert_eq!(now, 1795997200);
        assert_eq!(info.unwrap().backups.len(), 2);
        let (_, info) = parse_info_output(
            "now=1\nWARN: something\nERROR: [103]: unable to find a valid repository:\n",
            "shop",
        );
        assert_eq!(
            info.unwrap_err(),
            "ERROR: [103]: unable to find a valid repository:"
        );
    }

    #[test]
    fn sizes_and_ages_read_like_a_person_wrote_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(22_900_000), "21.8 MiB");
        assert_eq!(human_age(42), "42 s");
        assert_eq!(human_age(3 * 3600 + 300), "3 h 5 min");
        assert_eq!(human_age(2 * 86_400 + 4 * 3600), "2 d 4 h");
    }
}
