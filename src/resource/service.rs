//! A systemd unit's state: enabled and/or running.

use super::Context;
use crate::config::identifier::shell_word;
use crate::model::facts::QueryResult;

/// `systemctl is-enabled`, a blank line, `systemctl is-active`.
pub fn probe(name: &str) -> String {
    format!(
        "systemctl is-enabled -- {n} 2>/dev/null; echo; systemctl is-active -- {n} 2>/dev/null; true",
        n = shell_word(name)
    )
}

pub fn plan(ctx: &mut Context, r: &QueryResult, name: &str, enabled: bool, running: bool) {
    let mut lines = r.stdout.lines().map(str::trim).filter(|l| !l.is_empty());
    let is_enabled = lines.next().unwrap_or("");
    let is_active = lines.next().unwrap_or("");
    let mut todo = Vec::new();
    if enabled && !matches!(is_enabled, "enabled" | "static" | "alias") {
        todo.push("enable");
    }
    if running && is_active != "active" {
        todo.push("start");
    }
    if !enabled && is_enabled == "enabled" {
        todo.push("disable");
    }
    if !running && matches!(is_active, "active" | "activating" | "reloading") {
        todo.push("stop");
    }
    if !todo.is_empty() {
        let n = shell_word(name);
        let mut script = String::from("set -e\n");
        if todo.contains(&"enable") {
            script.push_str(&format!("systemctl enable {n}\n"));
        }
        if todo.contains(&"start") {
            script.push_str(&format!("systemctl start {n}\n"));
        }
        if todo.contains(&"disable") {
            script.push_str(&format!("systemctl disable {n}\n"));
        }
        if todo.contains(&"stop") {
            script.push_str(&format!("systemctl stop {n}\n"));
        }
        // Started in the prepare phase, so the second probe sees its database.
        let prepare = ctx.pg_stopped && name == "postgresql";
        ctx.push(
            format!("~ service {name}: {}", todo.join(" and ")),
            None,
            script,
        )
        .prepare = prepare;
    }
}

/// Starts the oneshot service and waits for it (joining a run the timer started); on failure
/// the last lines of that run's own log say why (lego's error is its last line).
pub fn run_oneshot(service: &str) -> String {
    let s = shell_word(service);
    // A start that failed with 219/CGROUP never ran anything (systemd could not put the process
    // into the unit's control group; seen in containers while the previous run's group is torn
    // down), so it is tried once more.
    format!(
        "if started=$(systemctl start {s} 2>&1); then :\n\
         elif [ \"$(systemctl show -p ExecMainStatus --value {s})\" = 219 ] && \
           {{ sleep 2; systemctl reset-failed {s} 2>/dev/null; started=$(systemctl start {s} 2>&1); }}; then :\n\
         else\n  \
         id=$(systemctl show -p InvocationID --value {s})\n  \
         log=$(journalctl _SYSTEMD_INVOCATION_ID=\"$id\" -o cat --no-pager | tail -n 12)\n  \
         [ -n \"$log\" ] || log=$(journalctl -u {s} -n 12 -o cat --no-pager)\n  \
         printf '%s\\n' \"$log\" \"$started\" >&2\n  \
         echo \"{service} failed: its log above; all of it: journalctl -u {service}\" >&2\n  \
         exit 1\nfi\n"
    )
}

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::Op;

    #[test]
    fn table() {
        let op = |name: &str| Op::Service {
            name: name.into(),
            enabled: true,
            running: true,
        };
        for (answer, expected) in [
            ("enabled\n\nactive\n", vec![]),
            ("static\n\nactive\n", vec![]),
            (
                "disabled\n\ninactive\n",
                vec!["~ service nginx: enable and start"],
            ),
            ("enabled\n\nfailed\n", vec!["~ service nginx: start"]),
            ("\n\n", vec!["~ service nginx: enable and start"]),
        ] {
            assert_eq!(
                summaries(&plan(op("nginx"), 0, answer, &[])),
                expected,
                "{answer:?}"
            );
        }
        // Services that must be off: the timer of a server that no longer issues certificates.
        let off = |name: &str| Op::Service {
            name: name.into(),
            enabled: false,
            running: false,
        };
        for (answer, expected) in [
            (
                "enabled\n\nactive\n",
                vec!["~ service t.timer: disable and stop"],
            ),
            ("disabled\n\ninactive\n", vec![]),
            ("\n\ninactive\n", vec![]),
        ] {
            assert_eq!(
                summaries(&plan(off("t.timer"), 0, answer, &[])),
                expected,
                "{answer:?}"
            );
        }
        // A stopped PostgreSQL is started in the prepare phase, before the second probe.
        let stopped = plan(
            op("postgresql"),
            0,
            "enabled\n\ninactive\n",
            &[("pg", 4, "")],
        );
        assert!(stopped[0].prepare);
        assert!(!plan(op("nginx"), 0, "enabled\n\ninactive\n", &[("pg", 4, "")])[0].prepare);
    }
}
