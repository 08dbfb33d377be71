//! PostgreSQL specifics: the first-start file, tandem's block in pg_hba.conf, and
//! the SQL/psql invocations the engine runs as the postgres superuser.

pub mod scram;
pub mod sql;
pub mod tuning;
pub mod vars;
pub mod verify;

use crate::config::identifier::shell_word;

/// The port PostgreSQL listens on (Debian's default; tandem does not change it).
pub const PORT: u16 = 5432;

/// `name` of each `name = value` line in a postgresql.conf fragment. Tests only: tandem reads
/// its drop-ins' settings from their ops (`PostgresConf`), never from their text.
#[cfg(test)]
pub fn setting_names(conf: &str) -> Vec<String> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|k| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect()
}

/// `(name, value)` of each setting, quotes removed, as `pg_settings.setting` shows it. Tests
/// only, as `setting_names`: they hold the templates' text and the typed settings together.
#[cfg(test)]
pub fn settings(conf: &str) -> Vec<(String, String)> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.split('#').next().unwrap_or("").trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.trim().to_string(), v.replace("''", "'"))
        })
        .collect()
}

/// Where pg_createcluster reads settings for a new cluster (Debian's createcluster.conf
/// includes this directory): tandem's settings that need a restart go here too, so the
/// cluster the PostgreSQL package creates starts with them and apply does not restart it.
pub const FIRST_START_FILE: &str = "/etc/postgresql-common/createcluster.d/tandem.conf";

/// Settings PostgreSQL takes only at start (`pg_settings.context` postmaster) that the first
/// start gets from [`FIRST_START_FILE`]. Only those whose line Debian's postgresql.conf has
/// (commented or not, in a form pg_createcluster recognises): pg_createcluster writes them
/// there, above `include_dir = 'conf.d'`, so conf.d still decides them on every later start.
/// A setting it does not find it appends below the include, where it would override conf.d
/// for good: such settings stay out, and a change of them costs the restart as before. So does
/// `shared_preload_libraries`: a library from a package installed later would stop the first
/// start.
pub const FIRST_START_SETTINGS: &[&str] = &[
    "listen_addresses",
    "max_connections",
    "shared_buffers",
    "max_worker_processes",
    "wal_level",
    "archive_mode",
    "max_wal_senders",
];

/// The content of [`FIRST_START_FILE`]: the [`FIRST_START_SETTINGS`] that the conf.d
/// drop-ins `confs` set (a later drop-in's value wins, as in PostgreSQL), in createcluster.conf's
/// syntax (`%` doubled). Values with a quote stay out (a restart then applies them).
pub fn first_start_conf(confs: &[&[(String, String)]]) -> String {
    let mut chosen: Vec<(String, String)> = Vec::new();
    for conf in confs {
        for (name, value) in conf.iter().cloned() {
            if !FIRST_START_SETTINGS.contains(&name.as_str()) || value.contains('\'') {
                continue;
            }
            chosen.retain(|(n, _)| *n != name);
            chosen.push((name, value));
        }
    }
    let mut out = String::from(
        "# Managed by tandem: this file is overwritten on every apply.\n\
         # pg_createcluster copies these into a new cluster's postgresql.conf, so its first start\n\
         # has the settings that need a restart; tandem's conf.d drop-ins decide them afterwards.\n",
    );
    for (name, value) in chosen {
        out.push_str(&format!("{name} = '{}'\n", value.replace('%', "%%")));
    }
    out
}

/// The first line of a tandem-owned block (a template's output starts with it).
pub fn block_markers(block: &str) -> Option<(String, String)> {
    let begin = block.lines().next()?.trim();
    let rest = begin.strip_prefix("# BEGIN ")?;
    let owner = rest.split(':').next()?.trim();
    Some((format!("# BEGIN {owner}"), format!("# END {owner}")))
}

/// Addresses a pg_hba.conf line may name outside tandem's block: this machine only. Every
/// other `host*` line (and any `include*` line, which could bring such lines in) admits more
/// than the app servers and is disabled.
const LOCAL_ADDRESSES: &[&str] = &[
    "127.0.0.1/32",
    "127.0.0.0/8",
    "::1/128",
    "localhost",
    "samehost",
];

/// What a disabled line starts with: the line is kept, commented out, so the operator sees
/// what was there and why it stopped working.
pub const DISABLED_PREFIX: &str = "# disabled by tandem (admits more than the app servers): ";

/// What a line overriding one of tandem's settings (below the conf.d include) starts with once
/// apply has commented it out.
pub const OVERRIDE_DISABLED_PREFIX: &str = "# disabled by tandem (overrides its conf.d): ";

/// Does this pg_hba.conf line (outside tandem's block) admit a connection from another
/// machine? Mirrored by the awk function `foreign` in `splice_shell`.
pub fn admits_others(line: &str) -> bool {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let Some(kind) = fields.first() else {
        return false;
    };
    if kind.starts_with('#') {
        return false;
    }
    if kind.starts_with("include") {
        return true;
    }
    if !kind.starts_with("host") {
        return false;
    }
    let address = fields.get(3).copied().unwrap_or("");
    let mask = fields.get(4).copied().unwrap_or("");
    let local = LOCAL_ADDRESSES.contains(&address)
        || (address == "127.0.0.1" && mask == "255.255.255.255")
        || (address == "::1" && mask == "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    !local
}

/// `file` with tandem's block (between its BEGIN and END lines) replaced by `block`, or
/// `block` appended when the file has none, and every line outside it that admits another
/// machine commented out (`DISABLED_PREFIX`). Other lines are kept as they are.
pub fn splice_block(file: &str, block: &str) -> String {
    let Some((begin, end)) = block_markers(block) else {
        return format!("{file}{block}");
    };
    let mut out = String::new();
    let mut skipping = false;
    let mut placed = false;
    for line in file.split_inclusive('\n') {
        if !skipping && line.starts_with(&begin) {
            skipping = true;
            if !placed {
                out.push_str(block);
                placed = true;
            }
            continue;
        }
        if skipping {
            if line.starts_with(&end) {
                skipping = false;
            }
            continue;
        }
        if admits_others(line) {
            out.push_str(DISABLED_PREFIX);
        }
        out.push_str(line);
    }
    if !placed {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(block);
    }
    out
}

/// The lines of `file` outside tandem's block that admit other machines (for plan and verify).
pub fn foreign_lines(file: &str, block: &str) -> Vec<String> {
    let (begin, end) = block_markers(block).unwrap_or_default();
    let mut inside = false;
    let mut found = Vec::new();
    for line in file.lines() {
        if !inside && !begin.is_empty() && line.starts_with(&begin) {
            inside = true;
        } else if inside {
            inside = !line.starts_with(&end);
        } else if admits_others(line) {
            found.push(line.to_string());
        }
    }
    found
}

/// The same splice, done on the host at apply time (the file may not exist at plan time:
/// installing PostgreSQL creates it, and it may have been edited since). Reads the block from
/// `$BLOCK`, writes `$NEW`.
pub fn splice_shell(path: &str, block: &str) -> String {
    let (begin, end) = block_markers(block).unwrap_or_default();
    let local: Vec<String> = LOCAL_ADDRESSES
        .iter()
        .map(|a| format!("local[\"{a}\"]=1;"))
        .collect();
    format!(
        "awk -v b={b} -v e={e} -v blockfile=\"$BLOCK\" -v disabled={d} '\n\
           BEGIN {{ {local} }}\n\
           function emit() {{ while ((getline l < blockfile) > 0) print l; close(blockfile); placed = 1 }}\n\
           function foreign(line,   f, n) {{\n\
             n = split(line, f, /[ \\t]+/); if (f[1] == \"\" && n > 1) {{ for (i = 1; i < n; i++) f[i] = f[i+1]; n-- }}\n\
             if (n == 0 || substr(f[1], 1, 1) == \"#\") return 0\n\
             if (index(f[1], \"include\") == 1) return 1\n\
             if (index(f[1], \"host\") != 1) return 0\n\
             if (f[4] in local) return 0\n\
             if (f[4] == \"127.0.0.1\" && f[5] == \"255.255.255.255\") return 0\n\
             if (f[4] == \"::1\" && f[5] == \"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\") return 0\n\
             return 1 }}\n\
           !skip && index($0, b) == 1 {{ skip = 1; if (!placed) emit(); next }}\n\
           skip {{ if (index($0, e) == 1) skip = 0; next }}\n\
           {{ if (foreign($0)) printf \"%s\", disabled; print }}\n\
           END {{ if (!placed) emit() }}' {p} >\"$NEW\"",
        b = shell_word(&begin),
        e = shell_word(&end),
        d = shell_word(DISABLED_PREFIX),
        local = local.join(" "),
        p = shell_word(path)
    )
}

/// A psql invocation as postgres, reading SQL from the heredoc that follows it in the script.
pub fn psql(database: Option<&str>) -> String {
    let db = database
        .map(|d| format!(" -d {}", shell_word(d)))
        .unwrap_or_default();
    as_postgres(&format!("-q -v ON_ERROR_STOP=1{db}"))
}

/// psql as the postgres superuser with `args`, run from `/` (so the caller's working
/// directory never matters to runuser). Every psql tandem runs on a host is spelled here.
pub fn as_postgres(args: &str) -> String {
    format!("(cd / && runuser -u postgres -- psql -X {args})")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &str = "# BEGIN tandem shop: managed\nhost shop shop 10.0.0.2/32 scram-sha-256\n# END tandem shop\n";

    #[test]
    fn settings_of_a_dropin() {
        let conf = "# c\nlisten_addresses = 'localhost,10.0.0.3'\npassword_encryption = 'scram-sha-256' # x\n";
        assert_eq!(
            setting_names(conf),
            ["listen_addresses", "password_encryption"]
        );
        assert_eq!(
            settings(conf)[0],
            ("listen_addresses".into(), "localhost,10.0.0.3".into())
        );
        assert_eq!(settings(conf)[1].1, "scram-sha-256");
    }

    #[test]
    fn first_start_takes_the_restart_settings_only_the_last_value_and_doubles_percent() {
        let listen =
            "# c\nlisten_addresses = 'localhost,10.0.0.3'\npassword_encryption = 'scram-sha-256'\n";
        let tuning =
            "shared_buffers = '1GB'\t# 25% of RAM\nwork_mem = '8MB'\nshared_buffers = '2GB'\n";
        let odd = "shared_preload_libraries = 'x'\nwal_level = 'it''s'\narchive_mode = 'a%b'\n";
        let typed: Vec<Vec<(String, String)>> =
            [listen, tuning, odd].iter().map(|c| settings(c)).collect();
        let confs: Vec<&[(String, String)]> = typed.iter().map(Vec::as_slice).collect();
        let conf = first_start_conf(&confs);
        let lines: Vec<&str> = conf.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "listen_addresses = 'localhost,10.0.0.3'",
                "shared_buffers = '2GB'",
                "archive_mode = 'a%%b'",
            ]
        );
    }

    #[test]
    fn splice_appends_then_replaces_keeping_the_rest() {
        let original = "local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n";
        let once = splice_block(original, BLOCK);
        assert_eq!(once, format!("{original}{BLOCK}"));
        let moved = BLOCK.replace("10.0.0.2", "10.0.0.9");
        let twice = splice_block(&format!("{once}local all all peer\n"), &moved);
        assert_eq!(twice, format!("{original}{moved}local all all peer\n"));
        assert_eq!(splice_block(&twice, &moved), twice, "idempotent");
    }

    /// Lines an operator or an attacker might add by hand, each with whether it admits
    /// another machine.
    const HAND_EDITS: &[(&str, bool)] = &[
        ("host all all 0.0.0.0/0 trust", true),
        ("hostssl all all ::/0 scram-sha-256", true),
        ("host    all all 10.0.0.9/32 md5  # bi tool", true),
        ("\thost all all 192.168.0.0 255.255.0.0 trust", true),
        ("host all all samenet trust", true),
        ("include_dir conf.d", true),
        ("host all all 127.0.0.1/32 scram-sha-256", false),
        ("host all all ::1/128 scram-sha-256", false),
        ("host replication all 127.0.0.1 255.255.255.255 md5", false),
        ("host all all localhost trust", false),
        ("local all postgres peer", false),
        ("# host all all 0.0.0.0/0 trust", false),
        ("", false),
    ];

    #[test]
    fn lines_admitting_other_machines_are_found() {
        for (line, admits) in HAND_EDITS {
            assert_eq!(admits_others(line), *admits, "{line:?}");
        }
        let file = format!("host all all 0.0.0.0/0 trust\n{BLOCK}local all all peer\n");
        assert_eq!(
            foreign_lines(&file, BLOCK),
            ["host all all 0.0.0.0/0 trust"],
            "tandem's own block is not foreign"
        );
        let spliced = splice_block(&file, BLOCK);
        assert!(spliced.starts_with(&format!("{DISABLED_PREFIX}host all all 0.0.0.0/0 trust\n")));
        assert!(foreign_lines(&spliced, BLOCK).is_empty());
        assert_eq!(splice_block(&spliced, BLOCK), spliced, "idempotent");
    }

    #[test]
    fn shell_splice_agrees_with_the_rust_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pg_hba.conf");
        let mut original = "local all postgres peer\n# BEGIN tandem shop: old\nhost shop shop 10.0.0.1/32 scram-sha-256\n# END tandem shop\nlocal all all peer\n".to_string();
        for (line, _) in HAND_EDITS {
            original.push_str(line);
            original.push('\n');
        }
        std::fs::write(&file, &original).unwrap();
        std::fs::write(dir.path().join("block"), BLOCK).unwrap();
        let script = format!(
            "BLOCK={} NEW={}\n{}",
            dir.path().join("block").display(),
            dir.path().join("new").display(),
            splice_shell(file.to_str().unwrap(), BLOCK)
        );
        let status = std::process::Command::new("sh")
            .args(["-c", &script])
            .status()
            .unwrap();
        assert!(status.success());
        let shell = std::fs::read_to_string(dir.path().join("new")).unwrap();
        assert_eq!(shell, splice_block(&original, BLOCK));
    }
}
