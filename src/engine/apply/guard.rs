//! The lockout guard: before a change to sshd or ufw, the host saves what decides whether the
//! operator can log in and arms a timer that puts it back by itself; after the changes tandem
//! logs in over a new connection and disarms it, or reverts at once.

use std::time::Duration;

use crate::config::identifier::shell_word;
use crate::engine::transport::{Ssh, SshOptions, Transport};
use crate::model::report::Report;
use crate::resource::script::{STATE_DIR, payload};

/// Seconds after which an armed guard restores sshd and ufw by itself.
pub(super) const GUARD_SECONDS: u64 = 120;

/// Logs in over a new connection as the configured user and runs a command through sudo.
/// Retried with backoff for a bounded time: right after `reload ssh` on a loaded host, sshd
/// may refuse connections for a moment, and a correct change must not be rolled back for that.
pub(super) async fn confirm_login(
    name: &str,
    destination: &str,
    options: &SshOptions,
    report: &dyn Report,
) -> anyhow::Result<()> {
    let fresh = SshOptions {
        bootstrap_user: None,
        accept_new_host_keys: false,
        ..options.clone()
    };
    let mut wait = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        let result = async {
            let ssh = Ssh::connect(name, destination, &fresh).await?;
            let out = ssh.run("true").await;
            ssh.close().await;
            let out = out?;
            anyhow::ensure!(
                out.success(),
                "a command over the new connection failed: {}",
                out.stderr_tail()
            );
            Ok(())
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= CONFIRM_ATTEMPTS => {
                return Err(e.context(format!("after {attempt} attempts")));
            }
            Err(e) => {
                report.progress(
                    name,
                    &format!(
                        "SSH not confirmed yet (attempt {attempt} of {CONFIRM_ATTEMPTS}): {}",
                        format!("{e:#}").lines().next().unwrap_or("")
                    ),
                );
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
        }
    }
}

/// Attempts at confirming SSH after a guarded change: 0.5 + 1 + 2 + 4 + 8 s of waiting in
/// all, well inside the guard's own deadline.
const CONFIRM_ATTEMPTS: u32 = 6;

/// Saves what decides whether the operator can log in (sshd's drop-ins, ufw, the deploy user's
/// authorized_keys, sudoers.d), writes a revert script, and schedules it with a transient
/// systemd timer: if tandem cannot confirm SSH access (or dies), the host puts all of it back
/// by itself.
pub(super) fn arm_guard_script(deploy_user: &str) -> String {
    let revert = format!(
        "#!/bin/sh\nG={STATE_DIR}/guard\n\
         rm -rf /etc/ssh/sshd_config.d && cp -a \"$G/sshd_config.d\" /etc/ssh/sshd_config.d\n\
         rm -rf /etc/sudoers.d && cp -a \"$G/sudoers.d\" /etc/sudoers.d\n\
         H=$(getent passwd {u} | cut -d: -f6)\n\
         if [ -n \"$H\" ]; then if [ -e \"$G/authorized_keys\" ]; then cp -a \"$G/authorized_keys\" \"$H/.ssh/authorized_keys\"; \
           else rm -f \"$H/.ssh/authorized_keys\"; fi; fi\n\
         systemctl reload ssh 2>/dev/null || systemctl restart ssh 2>/dev/null || true\n\
         if systemctl is-enabled ssh.socket >/dev/null 2>&1; then systemctl daemon-reload; systemctl stop ssh.service; systemctl restart ssh.socket; fi\n\
         if [ -d \"$G/ufw\" ]; then rm -rf /etc/ufw && cp -a \"$G/ufw\" /etc/ufw; fi\n\
         if [ \"$(cat \"$G/ufw-state\")\" = active ]; then ufw reload; elif command -v ufw >/dev/null; then ufw --force disable; fi\n\
         echo \"$(date -Is) lockout guard: restored sshd_config.d, sudoers.d, authorized_keys and ufw\" >>{STATE_DIR}/audit.log\n",
        u = shell_word(deploy_user),
    );
    format!(
        "set -e\numask 077\nG={STATE_DIR}/guard\nrm -rf \"$G\"\nmkdir -p \"$G\"\n\
         if [ -d /etc/ssh/sshd_config.d ]; then cp -a /etc/ssh/sshd_config.d \"$G/\"; else mkdir \"$G/sshd_config.d\"; fi\n\
         cp -a /etc/sudoers.d \"$G/sudoers.d\"\n\
         H=$(getent passwd {u} | cut -d: -f6 || true)\n\
         if [ -n \"$H\" ] && [ -e \"$H/.ssh/authorized_keys\" ]; then cp -a \"$H/.ssh/authorized_keys\" \"$G/authorized_keys\"; fi\n\
         if [ -d /etc/ufw ]; then cp -a /etc/ufw \"$G/ufw\"; fi\n\
         if command -v ufw >/dev/null && ufw status | grep -q '^Status: active'; then echo active; else echo inactive; fi >\"$G/ufw-state\"\n\
         {}\nchmod 700 \"$G/revert\"\n\
         systemctl stop tandem-guard.timer 2>/dev/null || true\n\
         systemctl reset-failed tandem-guard.timer tandem-guard.service 2>/dev/null || true\n\
         systemd-run --quiet --unit=tandem-guard --on-active={GUARD_SECONDS} --timer-property=AccuracySec=1s /bin/sh \"$G/revert\"\n",
        payload(revert.as_bytes(), ">\"$G/revert\""),
        u = shell_word(deploy_user),
    )
}

pub(super) const DISARM_GUARD: &str = "systemctl stop tandem-guard.timer 2>/dev/null || true\n\
     systemctl reset-failed tandem-guard.timer tandem-guard.service 2>/dev/null || true\n";
