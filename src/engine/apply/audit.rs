//! What a run leaves behind and says at the end: each host's audit log lines, who ran it, and
//! one line per host.

use super::{Fleet, HostReport};
use crate::engine::transport::Transport;
use crate::resource::script::{STATE_DIR, payload};

/// Appends what ran on host `index` to its audit log; a failure to is said, not fatal.
pub(super) async fn write_audit<T: Transport>(
    fleet: &Fleet<'_, T>,
    index: usize,
    report: &HostReport,
) {
    let audit = audit_script(fleet.run_id, fleet.who, report);
    if let Err(e) = fleet.hosts[index].run(&audit).await {
        fleet.report.progress(
            &report.server,
            &format!("could not write the audit log: {e:#}"),
        );
    }
}

fn audit_script(run_id: &str, who: &str, report: &HostReport) -> String {
    let mut lines = String::new();
    for a in &report.applied {
        lines.push_str(&format!("run={run_id} by={who} applied: {}\n", a.what));
    }
    if let Some(e) = &report.error {
        lines.push_str(&format!(
            "run={run_id} by={who} FAILED: {}\n",
            e.replace('\n', " ")
        ));
    }
    if lines.is_empty() {
        return "true".into();
    }
    format!(
        "umask 077\nmkdir -p {STATE_DIR}\n{}\n",
        payload(
            lines.as_bytes(),
            &format!(
                "| while IFS= read -r l; do printf '%s %s\\n' \"$(date -Is)\" \"$l\"; done >>{STATE_DIR}/audit.log"
            )
        )
    )
}

/// "user@machine", for the lock owner and the audit log.
pub fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            if std::env::var("HOME").as_deref() == Ok("/root") {
                "root".into()
            } else {
                "unknown".into()
            }
        });
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{user}@{}", host.trim())
}

/// One line per host for the end of apply.
pub fn summary(reports: &[HostReport]) -> (String, bool) {
    let mut ok = true;
    let mut out = String::new();
    for r in reports {
        match &r.error {
            None => out.push_str(&format!(
                "{}: {} change(s) applied\n",
                r.server,
                r.applied.len()
            )),
            Some(e) => {
                ok = false;
                out.push_str(&format!(
                    "{}: FAILED after {} change(s): {e}\n",
                    r.server,
                    r.applied.len()
                ));
            }
        }
    }
    (out, ok)
}
