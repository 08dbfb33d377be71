//! `Facts`: what a host is like now, gathered in one probe script per host (after a tiny
//! discovery script that finds versions and paths). The probe is a list of named queries; its
//! output is a line `@id status size` per query, the line `@@`, then the queries' output bytes
//! one after the other (sizes frame them, so any bytes survive the trip).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::Role;
use crate::config::identifier::shell_word;
use crate::config::secret::Secret;

/// Versions and paths found on the host before anything else is asked.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Discovery {
    pub os: String,
    pub os_version: String,
    /// Installed PostgreSQL major version, or the one apt would install.
    pub postgres_version: Option<String>,
    pub postgres_installed: bool,
    /// `ssh.socket` enabled: Ubuntu 24.04 runs sshd socket-activated.
    pub ssh_socket_activated: bool,
    /// App servers: the Django SECRET_KEY already in the env file, kept so that sessions and
    /// signed data survive a run. Never shown: not in the plan's JSON, redacted in `Debug`.
    #[serde(skip)]
    pub secret_key: Option<Secret>,
    /// App servers: the SSH key the ACME issuer hands the certificate out with, when tandem
    /// made one before (an OpenSSH private key). Never shown, like the SECRET_KEY.
    #[serde(skip)]
    pub tls_push_key: Option<Secret>,
    /// Db and backup servers: the key pgBackRest reaches the other with, when tandem made
    /// one before. Never shown.
    #[serde(skip)]
    pub backup_key: Option<Secret>,
    /// Db and backup servers: the host's own Ed25519 host key (`ssh-ed25519 AAAA...`), which
    /// the other side of the backup link pins.
    #[serde(skip)]
    pub host_key: Option<String>,
    /// The db server's memory, CPUs and disk, for PostgreSQL's tuning.
    pub machine: Option<crate::postgres::tuning::Machine>,
}

/// The `postgresql` version apt would install: read from the package lists when they hold
/// exactly one (milliseconds); apt's own answer otherwise (pins, several sources, compressed
/// lists), which on a fresh server first builds apt's cache: half a second or more, on the
/// fresh db server's critical path.
const PG_CANDIDATE: &str = r#"pg_candidate() {
  c=$(grep -h -A4 -x 'Package: postgresql' /var/lib/apt/lists/*_Packages 2>/dev/null | sed -n 's/^Version: //p')
  [ "$(printf '%s\n' "$c" | grep -c .)" = 1 ] || c=$(apt-cache policy postgresql 2>/dev/null | awk '/Candidate:/ {print $2}')
  echo "$c"
}
"#;

/// The discovery script for a server of `role`. Only the db server asks about PostgreSQL, and
/// asks apt (the slowest question) only while PostgreSQL is not installed yet. An app server
/// reports the SECRET_KEY line of its env file (`env_file`), base64-encoded so no byte of it
/// can end the line.
pub fn discovery_script(role: Role, env_file: &str, push_key: &str) -> String {
    let mut script = String::from(
        r#"export LC_ALL=C
. /etc/os-release 2>/dev/null
echo "os=${ID:-unknown}"
echo "os_version=${VERSION_ID:-}"
echo "ssh_socket=$(systemctl is-enabled ssh.socket 2>/dev/null)"
"#,
    );
    if role == Role::App {
        script.push_str(&format!(
            "echo \"django_secret_key=$(sed -n 's/^DJANGO_SECRET_KEY=//p' -- {} 2>/dev/null | head -n 1 | base64 -w0)\"\n",
            shell_word(env_file)
        ));
        script.push_str(&format!(
            "echo \"tls_push_key=$(base64 -w0 -- {} 2>/dev/null)\"\n",
            shell_word(push_key)
        ));
    }
    if role != Role::App {
        script.push_str(&format!(
            "echo \"backup_key=$(base64 -w0 -- {} 2>/dev/null)\"\n",
            shell_word(crate::backup::vars::BACKUP_KEY_PATH)
        ));
        script.push_str(
            "echo \"host_key=$(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub 2>/dev/null)\"\n",
        );
    }
    if role != Role::App {
        script.push_str(PG_CANDIDATE);
    }
    if role == Role::Backup {
        // Its pgBackRest names the db server's data directory after the PostgreSQL version
        // of their (same) Debian release: postgresql-common (which pgbackrest brings) says
        // which in milliseconds; apt, asked only before it is installed, takes most of a second.
        script.push_str(
            r#"v=$(/usr/share/postgresql-common/supported-versions 2>/dev/null | tail -n 1)
[ -n "$v" ] || v=$(pg_candidate)
echo "pg_candidate=$v"
"#,
        );
    }
    if role == Role::Db {
        // The disk under PostgreSQL's data (or /, before it is installed): `ROTA` where the
        // kernel shows a block device, nothing in a container.
        script.push_str(
            r#"echo "mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
echo "cpus=$(nproc 2>/dev/null)"
d=/var/lib/postgresql; [ -d "$d" ] || d=/
echo "rotational=$(lsblk -ndo ROTA "$(findmnt -no SOURCE -T "$d" 2>/dev/null)" 2>/dev/null | head -n 1 | tr -d ' ')"
"#,
        );
        script.push_str(
            // The first cluster's version, as `pg_lsclusters` would list it first (it is a
            // Perl program, a tenth of this script's time): the config directories are its
            // source, and the glob sorts two-digit versions as it does.
            r#"installed=
if command -v pg_lsclusters >/dev/null 2>&1; then
  for conf in /etc/postgresql/*/*/postgresql.conf; do
    [ -e "$conf" ] || continue
    v=${conf#/etc/postgresql/}; installed=${v%%/*}; break
  done
fi
if [ -n "$installed" ]; then
  echo "pg_installed=$installed"
else
  echo "pg_candidate=$(pg_candidate)"
fi
"#,
        );
    }
    script
}

impl Discovery {
    /// The discovery as `parse_discovery` reads it (for captured fixtures).
    pub fn to_lines(&self) -> String {
        let pg = match (&self.postgres_version, self.postgres_installed) {
            (Some(v), true) => format!("pg_installed={v}\n"),
            (Some(v), false) => format!("pg_candidate={v}\n"),
            (None, _) => String::new(),
        };
        let secret_key = match &self.secret_key {
            Some(key) => format!(
                "django_secret_key={}\n",
                STANDARD.encode(crate::engine::templates::env_value(key.expose()))
            ),
            None => String::new(),
        };
        let machine = match &self.machine {
            Some(m) => format!(
                "mem_kb={}\ncpus={}\nrotational={}\n",
                m.memory_mib * 1024,
                m.cpus,
                match m.rotational {
                    Some(true) => "1",
                    Some(false) => "0",
                    None => "",
                }
            ),
            None => String::new(),
        };
        // The keys kept on the servers, so a capture replays without new ones (a capture
        // comes from throwaway lab servers; tandem writes it only for `TANDEM_CAPTURE_PROBES`).
        let key = |name: &str, key: &Option<Secret>| match key {
            Some(key) => format!("{name}={}\n", STANDARD.encode(key.expose())),
            None => String::new(),
        };
        let kept = key("tls_push_key", &self.tls_push_key) + &key("backup_key", &self.backup_key);
        let host_key = match &self.host_key {
            Some(line) => format!("host_key={line}\n"),
            None => String::new(),
        };
        format!(
            "os={}\nos_version={}\nssh_socket={}\n{machine}{pg}{secret_key}{kept}{host_key}",
            self.os,
            self.os_version,
            if self.ssh_socket_activated {
                "enabled"
            } else {
                "disabled"
            }
        )
    }
}

pub fn parse_discovery(text: &str) -> Discovery {
    let mut d = Discovery::default();
    let mut candidate = None;
    let (mut mem_kb, mut cpus, mut rotational) = (None, None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key {
            "os" => d.os = value.to_string(),
            "os_version" => d.os_version = value.to_string(),
            // A number only: the version becomes part of paths (/etc/postgresql/<v>/main).
            "pg_installed" if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) => {
                d.postgres_version = Some(value.to_string());
                d.postgres_installed = true;
            }
            // Debian/Ubuntu's `postgresql` metapackage is versioned `<major>+<n>`.
            "pg_candidate" => {
                candidate = value
                    .split(['+', '~'])
                    .next()
                    .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))
                    .map(str::to_string)
            }
            "ssh_socket" => d.ssh_socket_activated = value == "enabled",
            "django_secret_key" => d.secret_key = existing_secret_key(value),
            "tls_push_key" => d.tls_push_key = existing_push_key(value),
            "backup_key" => d.backup_key = existing_push_key(value),
            "host_key" => d.host_key = host_key(value),
            "mem_kb" => mem_kb = Some(value),
            "cpus" => cpus = Some(value),
            "rotational" => rotational = Some(value),
            _ => {}
        }
    }
    if d.postgres_version.is_none() {
        d.postgres_version = candidate;
    }
    d.machine = crate::postgres::tuning::parse_machine(mem_kb, cpus, rotational);
    d
}

/// The key from discovery's base64 of the env file's `DJANGO_SECRET_KEY=` value: kept only
/// when it is a value tandem wrote (quoted) and not a placeholder.
fn existing_secret_key(base64: &str) -> Option<Secret> {
    let raw = STANDARD.decode(base64).ok()?;
    let value = String::from_utf8(raw).ok()?;
    crate::engine::templates::unquote_env(value.trim_end())
        .filter(|k| !k.is_empty() && !k.starts_with("<redacted"))
        .map(Secret::new)
}

/// An SSH key (the push key, the backup key) from discovery's base64 of its file: kept only
/// when it is an OpenSSH private key (anything else is replaced).
fn existing_push_key(base64: &str) -> Option<Secret> {
    let raw = STANDARD.decode(base64).ok()?;
    let text = String::from_utf8(raw).ok()?;
    ssh_key::PrivateKey::from_openssh(&text).ok()?;
    Some(Secret::new(text))
}

/// An Ed25519 host key line as sshd's .pub file has it: kept only when it parses.
fn host_key(line: &str) -> Option<String> {
    let key = ssh_key::PublicKey::from_openssh(line.trim()).ok()?;
    key.to_openssh().ok()
}

/// Names of the shared queries (the rest are `t<task index>`).
/// The line between the probe's headers and its answers' bytes.
pub const ANSWERS_FOLLOW: &str = "@@";
pub const UFW: &str = "ufw";
pub const PG: &str = "pg";
pub const OWED: &str = "owed";

/// The release query's id (app servers).
pub const RELEASE: &str = "release";

/// The PostgreSQL query's status when PostgreSQL is installed but not answering.
pub const PG_STOPPED: i32 = 4;

#[derive(Clone, Debug, Default)]
pub struct QueryResult {
    pub status: i32,
    pub stdout: String,
}

impl QueryResult {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
}

/// The probe's answers, by query id.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub discovery: Discovery,
    pub results: BTreeMap<String, QueryResult>,
}

impl Facts {
    /// The probe's output (`probe_script`): the headers, `@@`, then the answers' bytes.
    pub fn parse(discovery: Discovery, output: &[u8]) -> anyhow::Result<Facts> {
        let mut results = BTreeMap::new();
        let mut headers = Vec::new();
        let mut rest = output;
        loop {
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                anyhow::bail!("the probe's answers are cut short (no `{ANSWERS_FOLLOW}` line)");
            };
            let line = String::from_utf8_lossy(&rest[..end]).into_owned();
            rest = &rest[end + 1..];
            if line == ANSWERS_FOLLOW {
                break;
            }
            // Anything else a login prints before the probe (a motd, say) is not an answer.
            let Some(header) = line.strip_prefix('@') else {
                continue;
            };
            let fields: Vec<&str> = header.split(' ').collect();
            let [id, status, size] = fields.as_slice() else {
                anyhow::bail!("probe answer header {line:?} is not `@id status size`");
            };
            let size: usize = size
                .parse()
                .map_err(|_| anyhow::anyhow!("probe answer {id} has no size: {line:?}"))?;
            headers.push((id.to_string(), status.parse().unwrap_or(-1), size));
        }
        for (id, status, size) in headers {
            anyhow::ensure!(
                rest.len() >= size,
                "the probe's answer {id} is cut short ({} of {size} bytes)",
                rest.len()
            );
            let (bytes, next) = rest.split_at(size);
            rest = next;
            results.insert(
                id,
                QueryResult {
                    status,
                    stdout: String::from_utf8_lossy(bytes).into_owned(),
                },
            );
        }
        Ok(Facts { discovery, results })
    }

    pub fn get(&self, id: &str) -> QueryResult {
        self.results.get(id).cloned().unwrap_or(QueryResult {
            status: -1,
            stdout: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_of_an_installed_and_a_fresh_host() {
        let installed = parse_discovery(
            "os=debian\nos_version=12\npg_installed=15\npg_candidate=15+248\nssh_socket=disabled\n",
        );
        assert_eq!(installed.postgres_version.as_deref(), Some("15"));
        assert!(installed.postgres_installed);
        let fresh = parse_discovery("os=debian\nos_version=13\npg_candidate=17+278\nssh_socket=\n");
        assert_eq!(fresh.postgres_version.as_deref(), Some("17"));
        assert!(!fresh.postgres_installed);
        let ubuntu = parse_discovery(
            "os=ubuntu\nos_version=24.04\npg_candidate=16+257build1.1\nssh_socket=enabled\n",
        );
        assert_eq!(ubuntu.postgres_version.as_deref(), Some("16"));
        assert!(ubuntu.ssh_socket_activated);
        for d in [installed, fresh, ubuntu] {
            assert_eq!(parse_discovery(&d.to_lines()), d, "round trip");
        }
    }

    #[test]
    fn an_app_servers_discovery_reads_back_the_secret_key_tandem_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        let discover = |content: Option<&str>| {
            if let Some(content) = content {
                std::fs::write(&env, content).unwrap();
            }
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(discovery_script(
                    Role::App,
                    env.to_str().unwrap(),
                    "/nonexistent",
                ))
                .output()
                .unwrap();
            parse_discovery(&String::from_utf8_lossy(&out.stdout))
        };
        assert_eq!(discover(None).secret_key, None, "no env file yet");
        let key = "k3y$with`odd\\\"bytes";
        let written = format!(
            "DJANGO_DEBUG=0\nDJANGO_SECRET_KEY={}\nDJANGO_SECRET_KEY=\"second\"\n",
            crate::engine::templates::env_value(key)
        );
        let found = discover(Some(&written));
        assert_eq!(found.secret_key, Some(Secret::new(key.into())));
        assert_eq!(parse_discovery(&found.to_lines()), found, "round trip");
        for not_ours in [
            "DJANGO_SECRET_KEY=bare\n",
            "DJANGO_SECRET_KEY=\"\"\n",
            "DJANGO_SECRET_KEY=\"<redacted: generated once on the app server and kept>\"\n",
        ] {
            assert_eq!(discover(Some(not_ours)).secret_key, None, "{not_ours}");
        }
    }

    #[test]
    fn only_the_db_server_asks_about_postgresql_and_apt_only_before_it_is_installed() {
        assert!(!discovery_script(Role::App, "/etc/app/env", "/k").contains("postgres"));
        let db = discovery_script(Role::Db, "/etc/app/env", "/k");
        let (_, branches) = db
            .split_once("installed=\n")
            .expect("the version's branches");
        let (installed, missing) = branches.split_once("else").expect("two branches");
        assert!(
            installed.contains("/etc/postgresql/*/*/postgresql.conf")
                && !installed.contains("pg_candidate")
        );
        assert!(missing.contains("pg_candidate"));
    }

    #[test]
    fn probe_output_round_trips_any_bytes() {
        let out = b"noise\n@t0 0 14\n@ufw 3 0\n@bin 0 3\n@@\nhello\n'world'\n\0\xff\n";
        let facts = Facts::parse(Discovery::default(), out).unwrap();
        assert_eq!(facts.get("t0").stdout, "hello\n'world'\n");
        assert!(facts.get("t0").ok());
        assert_eq!(facts.get(UFW).status, 3);
        assert_eq!(facts.get(UFW).stdout, "");
        assert_eq!(facts.get("bin").stdout, "\0\u{fffd}\n");
        assert_eq!(facts.get("base.a-step.file").status, -1);
    }

    #[test]
    fn a_cut_or_garbled_probe_output_is_an_error_not_empty_answers() {
        for (out, says) in [
            (&b"@t0 0 5\n@ufw 0 1\n"[..], "no `@@` line"),
            (b"@t0 0 5\n@@\nhel", "t0 is cut short (3 of 5 bytes)"),
            (
                b"@t0 0 5\n@ufw 0 1\n@@\nhello",
                "ufw is cut short (0 of 1 bytes)",
            ),
            (b"@t0 0\n@@\n", "is not `@id status size`"),
            (b"@t0 0 many\n@@\n", "t0 has no size"),
        ] {
            let err = Facts::parse(Discovery::default(), out)
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn the_postgresql_candidate_comes_from_the_lists_when_they_hold_one_else_from_apt() {
        let dir = tempfile::tempdir().unwrap();
        let lists = dir.path().join("lists");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&lists).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let apt_cache = bin.join("apt-cache");
        std::fs::write(&apt_cache, "#!/bin/sh\necho '  Candidate: 17+278'\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&apt_cache, std::fs::Permissions::from_mode(0o755)).unwrap();
        let stanza = |version: &str| {
            format!(
                "Package: postgresql-client\nVersion: 9\n\nPackage: postgresql\nSource: postgresql-common (248)\nVersion: {version}\nDepends: x\n\n"
            )
        };
        let candidate = || {
            let script = PG_CANDIDATE.replace("/var/lib/apt/lists", lists.to_str().unwrap());
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{script}pg_candidate"))
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        std::fs::write(lists.join("a_main_binary-amd64_Packages"), stanza("15+248")).unwrap();
        assert_eq!(candidate(), "15+248", "one source: read from its list");
        std::fs::write(
            lists.join("pgdg_main_binary-amd64_Packages"),
            stanza("18+280.pgdg"),
        )
        .unwrap();
        assert_eq!(candidate(), "17+278", "two sources: apt decides");
        std::fs::remove_dir_all(&lists).unwrap();
        std::fs::create_dir_all(&lists).unwrap();
        assert_eq!(candidate(), "17+278", "no uncompressed lists: apt decides");
    }
}
