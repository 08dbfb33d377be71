//! PostgreSQL specifics: the settings a conf.d drop-in sets, tandem's block in pg_hba.conf, and
//! the SQL/psql invocations the engine runs as the postgres superuser.

use crate::identifier::shell_word;

/// `name` of each `name = value` line in a postgresql.conf fragment.
pub fn setting_names(conf: &str) -> Vec<String> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|k| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect()
}

/// `(name, value)` of each setting, quotes removed, as `pg_settings.setting` shows it.
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

/// The first line of a tandem-owned block (a template's output starts with it).
pub fn block_markers(block: &str) -> Option<(String, String)> {
    let begin = block.lines().next()?.trim();
    let rest = begin.strip_prefix("# BEGIN ")?;
    let owner = rest.split(':').next()?.trim();
    Some((format!("# BEGIN {owner}"), format!("# END {owner}")))
}

/// `file` with tandem's block (between its BEGIN and END lines) replaced by `block`, or
/// `block` appended when the file has none. Lines outside the block are kept as they are.
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

/// The same splice, done on the host at apply time (the file may not exist at plan time:
/// installing PostgreSQL creates it). Reads the block from `$BLOCK`, writes `$NEW`.
pub fn splice_shell(path: &str, block: &str) -> String {
    let (begin, end) = block_markers(block).unwrap_or_default();
    format!(
        "awk -v b={b} -v e={e} -v blockfile=\"$BLOCK\" '\n\
           function emit() {{ while ((getline l < blockfile) > 0) print l; close(blockfile); placed = 1 }}\n\
           !skip && index($0, b) == 1 {{ skip = 1; if (!placed) emit(); next }}\n\
           skip {{ if (index($0, e) == 1) skip = 0; next }}\n\
           {{ print }}\n\
           END {{ if (!placed) emit() }}' {p} >\"$NEW\"",
        b = shell_word(&begin),
        e = shell_word(&end),
        p = shell_word(path)
    )
}

/// A psql invocation as postgres, reading SQL from the heredoc that follows it in the script.
pub fn psql(database: Option<&str>) -> String {
    let db = database
        .map(|d| format!(" -d {}", shell_word(d)))
        .unwrap_or_default();
    format!("(cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1{db})")
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
    fn splice_appends_then_replaces_keeping_the_rest() {
        let original = "local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n";
        let once = splice_block(original, BLOCK);
        assert_eq!(once, format!("{original}{BLOCK}"));
        let moved = BLOCK.replace("10.0.0.2", "10.0.0.9");
        let twice = splice_block(&format!("{once}local all all peer\n"), &moved);
        assert_eq!(twice, format!("{original}{moved}local all all peer\n"));
        assert_eq!(splice_block(&twice, &moved), twice, "idempotent");
    }

    #[test]
    fn shell_splice_agrees_with_the_rust_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pg_hba.conf");
        let original = "local all postgres peer\n# BEGIN tandem shop: old\nhost shop shop 10.0.0.1/32 scram-sha-256\n# END tandem shop\nlocal all all peer\n";
        std::fs::write(&file, original).unwrap();
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
        assert_eq!(shell, splice_block(original, BLOCK));
    }
}
