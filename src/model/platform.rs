//! What a server's operating system decides for tandem, in one place: where PostgreSQL keeps
//! its files and programs (Debian's postgresql-common layout, which Ubuntu shares), the
//! postgres user's home, and how sshd is started (a service, or `ssh.socket` as Ubuntu 24.04
//! ships it). Everything else reads these instead of spelling a path or a unit itself, so a
//! platform that differs is one place to teach.

/// The postgres user's home (where its SSH keys live).
pub const POSTGRES_HOME: &str = "/var/lib/postgresql";

/// A cluster's configuration directory (`version` may be a shell word such as `$version`).
pub fn postgres_conf_dir(version: &str) -> String {
    format!("/etc/postgresql/{version}/main")
}

/// A cluster's data directory.
pub fn postgres_data_dir(version: &str) -> String {
    format!("{POSTGRES_HOME}/{version}/main")
}

/// Beside the data directory, for a restore's staging copy.
pub fn postgres_restore_staging(version: &str) -> String {
    format!("{POSTGRES_HOME}/{version}/tandem-restore")
}

/// A version's server programs (`postgres`, `pg_ctl`).
pub fn postgres_bin_dir(version: &str) -> String {
    format!("/usr/lib/postgresql/{version}/bin")
}

/// How sshd re-reads its configuration on this server: a reload of the service, or where
/// sshd is socket-activated (Ubuntu 24.04's `ssh.socket`, Debian 13's when enabled), a restart
/// of the socket, which is what reads the listening settings (Ubuntu generates them from
/// sshd_config at daemon-reload). systemd refuses to restart the socket while the sshd it
/// started runs (Debian 13: "Job failed"), so that sshd is stopped first; sessions in progress
/// stay (ssh.service's KillMode=process), the next connection starts sshd with the new
/// configuration, and apply's lockout guard proves one.
pub fn ssh_reload(socket_activated: bool) -> &'static str {
    if socket_activated {
        "systemctl daemon-reload\nsystemctl stop ssh.service\nsystemctl restart ssh.socket\n"
    } else {
        "systemctl try-reload-or-restart ssh\n"
    }
}

/// Prints the installed PostgreSQL cluster's version (Debian's `pg_lsclusters`), nothing when
/// there is none.
pub const INSTALLED_VERSION: &str = "pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1}'";

/// `systemctl <verb> nginx`, returning once nginx serves the new configuration. nginx's reload
/// only signals the master: for a moment the old workers still accept connections with the
/// old configuration (a check right after a certificate hand-over saw the replaced
/// certificate). The old workers stop accepting when their title turns to "shutting down" or
/// they exit; this waits for that, 5 s at most, and says so on stderr when it gave up.
pub fn nginx_reload(verb: &str) -> String {
    format!(
        r#"nginx_master=$(cat /run/nginx.pid 2>/dev/null || true)
old_workers=$(if [ -n "$nginx_master" ]; then pgrep -P "$nginx_master" || true; fi)
systemctl {verb} nginx
waited=0
while :; do
    accepting=
    for w in $old_workers; do
        case "$( (tr '\0' ' ' </proc/$w/cmdline) 2>/dev/null || true)" in
            *"worker process is shutting down"*) ;;
            *"worker process"*) accepting=$w ;;
        esac
    done
    [ -z "$accepting" ] && break
    if [ $waited -ge 100 ]; then echo "nginx: worker $accepting from before the reload still runs after 5 s" >&2; break; fi
    sleep 0.05; waited=$((waited + 1))
done
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debians_layout_and_ubuntus_ssh_socket() {
        assert_eq!(postgres_conf_dir("15"), "/etc/postgresql/15/main");
        assert_eq!(
            postgres_data_dir("$version"),
            "/var/lib/postgresql/$version/main"
        );
        assert_eq!(postgres_bin_dir("17"), "/usr/lib/postgresql/17/bin");
        assert!(ssh_reload(true).contains("restart ssh.socket"));
        assert!(ssh_reload(false).contains("try-reload-or-restart ssh"));
        let nginx = nginx_reload("try-reload-or-restart");
        assert!(nginx.contains("systemctl try-reload-or-restart nginx\n"));
        assert!(nginx.find("pgrep").unwrap() < nginx.find("systemctl").unwrap());
    }
}
