//! What tandem accepts as a name it will put into SQL, shell, systemd unit and file names, and
//! the quoting it applies anyway: validation at the edge, quoting at every use.

/// Names for the project, database, role, system users and extensions: a lowercase letter,
/// then lowercase letters, digits or `_`, at most 31 characters. Safe unquoted in SQL, shell,
/// file names and as a Linux user name; tandem still quotes them wherever they are used.
pub fn is_safe_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 31
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Accounts and names that Debian, sshd or PostgreSQL already own: the project (a system user),
/// the deploy user, the database role and the database must not take them over.
pub const SYSTEM_ACCOUNTS: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "nogroup",
    "sshd",
    "messagebus",
    "postgres",
    "sudo",
    "adm",
    "staff",
    "users",
];

/// Why `name` cannot be the PostgreSQL role tandem owns, if it cannot.
pub fn reserved_role(name: &str) -> Option<&'static str> {
    if name == "postgres" {
        Some("`postgres` is PostgreSQL's superuser: tandem would demote it")
    } else if name == "public" {
        Some("`public` is PostgreSQL's pseudo-role for everyone")
    } else if name.starts_with("pg_") {
        Some("names starting with `pg_` are reserved for PostgreSQL's own roles")
    } else if name.starts_with("tandem_") {
        Some("names starting with `tandem_` are tandem's own roles (a cluster's replication)")
    } else {
        None
    }
}

/// Why `name` cannot be the database tandem owns, if it cannot.
pub fn reserved_database(name: &str) -> Option<&'static str> {
    match name {
        "postgres" => Some("`postgres` is PostgreSQL's maintenance database"),
        "template0" | "template1" => Some("template0 and template1 are PostgreSQL's templates"),
        _ => None,
    }
}

/// Why a variable named `name` must not come from the config, if it must not: it changes how
/// a shell or any program runs. tandem's root scripts source the app's env file (and the
/// renewal script lego's), and every unit and Django process gets it, so `PATH`, `IFS` or
/// `LD_PRELOAD` there would change what root runs.
pub fn changes_how_programs_run(name: &str) -> Option<&'static str> {
    const SHELL: &[&str] = &[
        "PATH",
        "IFS",
        "ENV",
        "BASH_ENV",
        "CDPATH",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "GLOBIGNORE",
        "POSIXLY_CORRECT",
        "HOME",
        "SHELL",
        "USER",
        "LOGNAME",
    ];
    // glibc's list of variables it drops for setuid programs, because they change what runs.
    const LOADER: &[&str] = &[
        "GCONV_PATH",
        "GETCONF_DIR",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "LOCPATH",
        "MALLOC_TRACE",
        "NIS_PATH",
        "NLSPATH",
        "RESOLV_HOST_CONF",
        "RES_OPTIONS",
    ];
    const PYTHON: &[&str] = &[
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONINSPECT",
        "PYTHONEXECUTABLE",
        "PYTHONUSERBASE",
        "PYTHONSAFEPATH",
        "PYTHONNOUSERSITE",
    ];
    // What systemd and gunicorn read to find their sockets and flags.
    const SERVICE: &[&str] = &[
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "NOTIFY_SOCKET",
        "GUNICORN_CMD_ARGS",
    ];
    if SHELL.contains(&name) {
        Some("the shell reads it: tandem's root scripts source this file")
    } else if name.starts_with("LD_") || LOADER.contains(&name) {
        Some("the dynamic loader or the C library reads it to change what a program runs")
    } else if PYTHON.contains(&name) {
        Some("it changes which Python runs and what it loads first")
    } else if SERVICE.contains(&name) {
        Some("systemd and gunicorn read it: tandem sets up the socket and gunicorn's flags")
    } else {
        None
    }
}

/// A name for `{env: NAME}`: what a POSIX shell accepts as a variable name.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A PostgreSQL extension name as the contrib ones are spelled (`citext`, `uuid-ossp`):
/// lowercase letters, digits, `_` and `-`. Always quoted as an identifier when used.
pub fn is_extension_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}

/// Server names: a hostname label (lowercase letters, digits, `-`, not at either end).
pub fn is_server_name(name: &str) -> bool {
    is_dns_label(name) && name.chars().all(|c| !c.is_ascii_uppercase())
}

fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A fully qualified host name: two or more DNS labels.
pub fn is_fqdn(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.len() <= 253 && name.split('.').count() >= 2 && name.split('.').all(is_dns_label)
}

/// A domain the site answers for: an FQDN, optionally with a leading `*.` wildcard.
pub fn is_domain(name: &str) -> bool {
    is_fqdn(name.strip_prefix("*.").unwrap_or(name))
}

/// A dotted Python module path such as `timesheet.wsgi`.
pub fn is_python_module(path: &str) -> bool {
    !path.is_empty()
        && path.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// An SSH destination: `user@host[:port]` or an alias from ~/.ssh/config. Never starts with `-`
/// (it would be read as an option by ssh) and has no whitespace or shell metacharacters.
pub fn is_ssh_destination(dest: &str) -> bool {
    !dest.is_empty()
        && !dest.starts_with('-')
        && dest.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | ':' | '[' | ']')
        })
}

/// `"name"` with embedded quotes doubled: a PostgreSQL identifier.
pub fn sql_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled: a PostgreSQL string literal (standard_conforming_strings).
pub fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A word quoted for a POSIX shell, unchanged when it needs no quoting.
pub fn shell_word(word: &str) -> String {
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| format!("'{}'", word.replace('\0', "").replace('\'', "'\\''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names() {
        assert!(is_safe_name("timesheet"));
        assert!(is_safe_name("crowd_minder2"));
        for bad in [
            "",
            "1abc",
            "Time",
            "a-b",
            "a b",
            "a;drop",
            "x\"y",
            &"a".repeat(32),
        ] {
            assert!(!is_safe_name(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn domains_and_fqdns() {
        assert!(is_fqdn("app1.example.com"));
        assert!(!is_fqdn("localhost"));
        assert!(!is_fqdn("bad_name.example.com"));
        assert!(is_domain("*.example.com"));
        assert!(!is_domain("*.com"));
        assert!(!is_domain("a.*.example.com"));
    }

    #[test]
    fn ssh_destinations() {
        assert!(is_ssh_destination("deploy@203.0.113.5:2222"));
        assert!(is_ssh_destination("lab-app"));
        assert!(!is_ssh_destination("-oProxyCommand=x"));
        assert!(!is_ssh_destination("a b"));
        assert!(!is_ssh_destination("a;b"));
    }

    #[test]
    fn env_and_extension_names() {
        assert!(is_env_name("TANDEM_DB_PASSWORD") && is_env_name("_x1"));
        for bad in [
            "",
            "1X",
            "X'; DROP DATABASE timesheet; --",
            "A-B",
            "A B",
            "A=B",
        ] {
            assert!(!is_env_name(bad), "{bad:?}");
        }
        assert!(is_extension_name("uuid-ossp") && is_extension_name("pg_trgm"));
        assert!(!is_extension_name("x\"; DROP") && !is_extension_name("-x"));
    }

    #[test]
    fn reserved_names() {
        for role in ["postgres", "public", "pg_monitor", "tandem_replicator"] {
            assert!(reserved_role(role).is_some(), "{role}");
        }
        assert!(reserved_role("timesheet").is_none());
        for db in ["postgres", "template0", "template1"] {
            assert!(reserved_database(db).is_some(), "{db}");
        }
        assert!(reserved_database("timesheet").is_none());
    }

    #[test]
    fn quoting() {
        assert_eq!(sql_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(sql_literal("it's"), "'it''s'");
        assert_eq!(shell_word("plain"), "plain");
        for word in ["a b'c", "$(reboot)", "x\"y`z", "-rf *"] {
            assert_eq!(
                shlex::split(&shell_word(word)),
                Some(vec![word.to_string()]),
                "{word}"
            );
        }
    }
}
