//! The lockout guard: before a change to sshd or ufw, the host saves what decides whether the
//! operator can log in and arms a timer that puts it back by itself; after the changes tandem
//! logs in over a new connection and disarms it, or reverts at once.

use std::time::Duration;

use crate::engine::transport::{Ssh, SshOptions, Transport};
use crate::model::report::Report;
use crate::resource::script::{STATE_DIR, assignments, payload};

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
        // The proof is a new login: a kept connection would prove nothing.
        persist: None,
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

const ARM_SH: &str = include_str!("../../../scripts/guard/arm.sh");
const REVERT_SH: &str = include_str!("../../../scripts/guard/revert.sh");

/// Arms the lockout guard (scripts/guard/arm.sh) with its revert script
/// (scripts/guard/revert.sh) for `deploy_user`'s access.
pub(super) fn arm_guard_script(deploy_user: &str) -> String {
    let guard = format!("{STATE_DIR}/guard");
    let revert = format!(
        "#!/bin/sh\n{}{REVERT_SH}",
        assignments(&[
            ("G", &guard),
            ("DEPLOY_USER", deploy_user),
            ("AUDIT_LOG", &format!("{STATE_DIR}/audit.log")),
        ])
    );
    format!(
        "set -e\numask 077\n{}rm -rf \"$G\"\nmkdir -p \"$G\"\n{}\n{ARM_SH}",
        assignments(&[
            ("G", &guard),
            ("DEPLOY_USER", deploy_user),
            ("GUARD_SECONDS", &GUARD_SECONDS.to_string()),
        ]),
        payload(revert.as_bytes(), ">\"$G/revert\""),
    )
}

pub(super) const DISARM_GUARD: &str = "systemctl stop tandem-guard.timer 2>/dev/null || true\n\
     systemctl reset-failed tandem-guard.timer tandem-guard.service 2>/dev/null || true\n";

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    /// The armed script and the revert it carries parse, and a deploy user's name reaches
    /// them as one word, whatever it holds.
    #[test]
    fn the_guard_scripts_take_any_user_name_as_a_word() {
        let user = "dep'loy $(touch pwned) `x` *";
        let arm = arm_guard_script(user);
        crate::resource::table::assert_shell_syntax(&arm, "arm the lockout guard");
        let (_, after) = arm.split_once("<<'TANDEM_DATA' >\"$G/revert\"\n").unwrap();
        let (encoded, _) = after.split_once("TANDEM_DATA").unwrap();
        let revert = base64::engine::general_purpose::STANDARD
            .decode(encoded.replace('\n', ""))
            .unwrap();
        let revert = String::from_utf8(revert).unwrap();
        crate::resource::table::assert_shell_syntax(&revert, "the guard's revert");
        for script in [&arm, &revert] {
            let (values, _) = script.split_once(REVERT_SH).unwrap_or_else(|| {
                script
                    .split_once("rm -rf \"$G\"")
                    .expect("assignments first")
            });
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{values}\nprintf %s \"$DEPLOY_USER\""))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), user);
        }
    }
}
