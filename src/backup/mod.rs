//! The `backup` step: pgBackRest as `backup:` asks, on the db server and on the backup server
//! that holds the repository.
//!
//! The db server archives every WAL segment to the repository (`archive_command`, in the
//! db playbook's `20-tandem-backup.conf`); the backup server takes base backups from the db
//! server on a systemd timer. pgBackRest needs each to reach the other over SSH (Debian 12's
//! 2.45 has no SFTP repository), as postgres, which Debian's packages make on both. One key
//! serves both directions, kept on both servers like the certificate push key, and the
//! authorized_keys line lets it run pgbackrest from the other server's address and nothing
//! else. The repository is encrypted; its passphrase lives on the backup server only.

pub mod pgbackrest;
pub mod restore;
pub mod vars;
pub mod verify;

use crate::backup::vars::BACKUP_KEY_PATH;
use crate::engine::templates::Templates;
use crate::engine::vars::Vars;
use crate::model::desired::StanzaSpec;
use crate::model::desired::{FileSpec, Op, Secrecy};
use crate::model::mode::Mode;

/// postgres's SSH directory on both servers, in its home (`platform::POSTGRES_HOME`, checked
/// by a test).
const SSH_DIR: &str = "/var/lib/postgresql/.ssh";

/// The ops of the `backup` step on the db server or the backup server.
pub fn ops(vars: &Vars, t: &mut Templates) -> anyhow::Result<Vec<Op>> {
    let backup = &vars.backup;
    if !backup.enabled {
        return Ok(Vec::new());
    }
    let repository = vars.host.role == "backup";
    let mut ops = vec![
        Op::Packages {
            names: vec!["pgbackrest".into()],
        },
        Op::directory("/usr/local/lib/tandem", 0o755, "root"),
        file(
            &backup.only_pgbackrest,
            t.render("backup/pgbackrest-only", vars)?,
            0o755,
            "root",
            Secrecy::Public,
        ),
        Op::directory(SSH_DIR, 0o700, "postgres"),
        file(
            BACKUP_KEY_PATH,
            vars.secrets.backup_key.clone(),
            0o600,
            "postgres",
            Secrecy::Masked { shown: Vec::new() },
        ),
        file(
            &format!("{SSH_DIR}/authorized_keys"),
            t.render("backup/authorized_keys", vars)?,
            0o600,
            "postgres",
            Secrecy::Public,
        ),
        file(
            &format!("{SSH_DIR}/config"),
            t.render("backup/ssh_config", vars)?,
            0o600,
            "postgres",
            Secrecy::Public,
        ),
    ];
    // The other side's host key, pinned; left as it is when that server is not in the run.
    if !vars.secrets.backup_known_host.is_empty() {
        ops.push(file(
            &format!("{SSH_DIR}/known_hosts_tandem"),
            format!("{}\n", vars.secrets.backup_known_host),
            0o644,
            "postgres",
            Secrecy::Public,
        ));
    }
    if !repository {
        ops.push(conf(
            t.render("backup/pgbackrest-db.conf", vars)?,
            Secrecy::Public,
            None,
        ));
        return Ok(ops);
    }
    let repository_conf = conf(
        t.render("backup/pgbackrest-repository.conf", vars)?,
        // Every value may be shown but the passphrase.
        Secrecy::Masked {
            shown: [
                "repo1-path",
                "repo1-retention-full",
                "repo1-cipher-type",
                "start-fast",
                "log-level-console",
                "log-level-file",
                "pg1-host",
                "pg1-host-user",
                "pg1-path",
                "pg2-host",
                "pg2-host-user",
                "pg2-path",
            ]
            .map(String::from)
            .to_vec(),
        },
        Some(opens_the_repository(&backup.stanza)),
    );
    ops.extend([
        repository_conf,
        // The operator's path: never re-own a directory that holds something else.
        Op::AdoptedDirectory {
            path: backup.path.clone(),
            mode: Mode(0o750),
            owner: "postgres".into(),
            group: "postgres".into(),
            may_hold: ["archive", "backup"].map(String::from).to_vec(),
        },
        file(
            &backup.script,
            t.render("backup/backup", vars)?,
            0o755,
            "root",
            Secrecy::Public,
        ),
        file(
            &format!("/etc/systemd/system/{}", backup.service),
            t.render("backup/backup.service", vars)?,
            0o644,
            "root",
            Secrecy::Public,
        ),
        file(
            &format!("/etc/systemd/system/{}", backup.timer),
            t.render("backup/backup.timer", vars)?,
            0o644,
            "root",
            Secrecy::Public,
        ),
        Op::Service {
            name: backup.timer.clone(),
            enabled: true,
            running: true,
        },
        Op::BackupStanza(StanzaSpec {
            stanza: backup.stanza.clone(),
            service: backup.service.clone(),
            db: backup
                .db_servers
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    ]);
    Ok(ops)
}

/// The check a new repository config must pass before it goes live: a passphrase that does
/// not open the backups already there would leave every later backup and restore failing.
/// pgBackRest cannot re-encrypt a repository, so this is refused, with what to do instead.
fn opens_the_repository(stanza: &str) -> String {
    format!(
        "if {} 2>&1 | grep -q FormatError; then echo 'backup.encryption_key does not open the backups already in the repository (pgBackRest cannot re-encrypt one): put the old key back, or start a new repository with another backup.path and keep the old key for restores from the old one'; exit 1; fi",
        crate::backup::pgbackrest::as_postgres(&format!(
            "--config={{path}} --stanza={} --output=json info",
            crate::config::identifier::shell_word(stanza)
        ))
    )
}

/// The known_hosts lines `server` pins for the other side of the backup link (a db server
/// pins the repository's host key, the repository each db server's), "" when a key of that
/// side is not known in this run (the file is left as it is then) or `server` is not on the
/// link.
pub fn known_host(
    config: &crate::config::Config,
    server: &crate::config::Server,
    host_keys: &std::collections::BTreeMap<String, String>,
) -> String {
    let lines: Option<Vec<String>> = crate::backup::vars::link_peers(config, server)
        .iter()
        .map(|p| Some(format!("{} {}", p.internal_ip, host_keys.get(&p.name)?)))
        .collect();
    lines.map(|l| l.join("\n")).unwrap_or_default()
}

/// /etc/pgbackrest.conf: postgres reads it, only root writes it.
fn conf(content: String, secret: Secrecy, validate: Option<String>) -> Op {
    Op::File(
        FileSpec::new("/etc/pgbackrest.conf", content, 0o640, "root")
            .group("postgres")
            .secret(secret)
            .validated(validate),
    )
}

fn file(path: &str, content: String, mode: u32, owner: &str, secret: Secrecy) -> Op {
    Op::File(FileSpec::new(path, content, mode, owner).secret(secret))
}

#[cfg(test)]
mod tests {
    use crate::engine::assets::Assets;
    use crate::engine::templates::Templates;
    use crate::engine::vars::HostFacts;

    const VAULT: &str = "  - {name: vault, role: backup, ssh: vault, fqdn: vault.example.com, internal_ip: 10.0.0.5}\n";

    /// The file at `path` on `server` as rendered with `more` servers beside the shop's db
    /// and app servers and a backup server.
    fn rendered(more: &str, server: &str, path: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::testing::shop_with(
            dir.path(),
            &format!("{VAULT}{more}"),
            "backup: {encryption_key: {env: K}}\n",
        );
        let mut templates = Templates::new(Assets::builtin());
        let all =
            crate::engine::render::desired_all(&config, &mut templates, &HostFacts::assumed())
                .unwrap();
        let files = crate::engine::render::rendered_files(&config, &all);
        let path = format!("{server}{path}");
        let file = files
            .iter()
            .find(|f| f.path.to_str() == Some(path.as_str()))
            .unwrap_or_else(|| panic!("no {path}"));
        file.content.clone()
    }

    /// The forced command as rendered for `server`, with pgbackrest replaced by `echo`.
    fn forced_command(server: &str) -> String {
        rendered("", server, "/usr/local/lib/tandem/pgbackrest-only")
            .replace("exec /usr/bin/pgbackrest", "exec echo ran")
    }

    /// A cluster's two db servers are both in the stanza and both ends of the repository's key;
    /// backups prefer the standby.
    #[test]
    fn a_cluster_is_backed_up_from_whichever_db_server_is_primary() {
        let cluster = crate::config::testing::CLUSTER;
        let conf = rendered(cluster, "vault", "/etc/pgbackrest.conf");
        for line in [
            "pg1-host=10.0.0.3\npg1-host-user=postgres\npg1-path=/var/lib/postgresql/15/main\n",
            "pg2-host=10.0.0.6\npg2-host-user=postgres\npg2-path=/var/lib/postgresql/15/main\n",
        ] {
            assert!(conf.contains(line), "{conf}");
        }
        let keys = rendered(cluster, "vault", "/var/lib/postgresql/.ssh/authorized_keys");
        assert!(keys.contains("from=\"10.0.0.3,10.0.0.6\""), "{keys}");
        let ssh = rendered(cluster, "vault", "/var/lib/postgresql/.ssh/config");
        assert!(ssh.contains("\nHost 10.0.0.3 10.0.0.6\n"), "{ssh}");
        let backup = rendered(cluster, "vault", "/usr/local/lib/tandem/backup-shop");
        assert!(backup.contains("--backup-standby backup; then"), "{backup}");
        crate::resource::table::assert_shell_syntax(&backup, "backup script");
        // Each db server reaches the repository only.
        for db in ["db", "db2"] {
            let keys = rendered(cluster, db, "/var/lib/postgresql/.ssh/authorized_keys");
            assert!(keys.contains("from=\"10.0.0.5\""), "{keys}");
            let conf = rendered(cluster, db, "/etc/pgbackrest.conf");
            assert!(conf.contains("repo1-host=10.0.0.5\n"), "{conf}");
        }
        // One db server: one pg host, no standby to prefer.
        let single = rendered("", "vault", "/etc/pgbackrest.conf");
        assert!(
            single.contains("pg1-host=") && !single.contains("pg2-host"),
            "{single}"
        );
        let backup = rendered("", "vault", "/usr/local/lib/tandem/backup-shop");
        assert!(!backup.contains("backup-standby"), "{backup}");
    }

    fn run(script: &str, command: &str) -> (bool, String) {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("SSH_ORIGINAL_COMMAND", command)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    #[test]
    fn the_backup_key_lives_in_the_postgres_users_home() {
        assert!(super::SSH_DIR.starts_with(crate::model::platform::POSTGRES_HOME));
        assert!(crate::backup::vars::BACKUP_KEY_PATH.starts_with(super::SSH_DIR));
    }

    /// What pgBackRest 2.45 on the db server sends the repository (captured with a fake ssh).
    const FROM_DB: &str = "pgbackrest --exec-id=7423-9b686f63 --log-level-console=off \
        --log-level-file=off --log-level-stderr=error --pg1-path=/var/lib/postgresql/15/main \
        --process=0 --remote-type=repo --repo=1 --stanza=shop";

    #[test]
    fn the_db_server_may_archive_restore_and_check_but_never_delete_backups() {
        let repository = forced_command("vault");
        for command in [
            "archive-push:remote",
            "archive-get:remote",
            "check:remote",
            "info:remote",
            "restore:remote",
        ] {
            let (ok, said) = run(&repository, &format!("{FROM_DB} {command}"));
            assert!(ok && said.starts_with("ran "), "{command}: {said}");
        }
        for (command, why) in [
            (
                format!("{FROM_DB} stanza-delete:remote"),
                "stanza-delete:remote",
            ),
            (format!("{FROM_DB} expire:remote"), "expire:remote"),
            (format!("{FROM_DB} backup:remote"), "backup:remote"),
            (
                format!("{FROM_DB} --repo1-path=/ archive-push:remote"),
                "--repo1-path=/",
            ),
            (
                format!("{FROM_DB} --config=/tmp/x archive-get:remote"),
                "--config=/tmp/x",
            ),
            (
                format!("{FROM_DB} --repo1-path /etc archive-push:remote"),
                "--repo1-path",
            ),
            (
                format!("{FROM_DB} --stanza=other info:remote"),
                "--stanza=other",
            ),
            (
                "pgbackrest --stanza=shop --force stanza-delete".into(),
                "not allowed",
            ),
            ("pgbackrest --stanza=shop expire".into(), "server: expire"),
            (FROM_DB.to_string(), "no pgBackRest command"),
            (format!("{FROM_DB} info:remote check:remote"), "one command"),
            ("sh -c id".into(), "only run pgbackrest"),
        ] {
            let (ok, said) = run(&repository, &command);
            assert!(!ok && !said.contains("ran "), "{command}: {said}");
            assert!(said.contains(why), "{command}: {said}");
        }
        // The db server's own side serves the backup server's remote ends as before.
        let db = forced_command("db");
        let (ok, said) = run(
            &db,
            "pgbackrest --stanza=shop --remote-type=pg backup:remote",
        );
        assert!(ok && said.starts_with("ran "), "{said}");
    }
}
