//! The host name: the server's FQDN in /etc/hostname, `hostname` and /etc/hosts.

use super::Context;
use crate::config::identifier::shell_word;
use crate::model::facts::QueryResult;

/// /etc/hostname, then what the kernel says.
pub const PROBE: &str = "cat /etc/hostname; hostname";

pub fn plan(ctx: &mut Context, r: &QueryResult, fqdn: &str) {
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    if lines.first() != Some(&fqdn) || lines.get(1) != Some(&fqdn) {
        let short = fqdn.split('.').next().unwrap_or(fqdn);
        let script = format!(
            "set -e\nF={f}\nhostnamectl set-hostname \"$F\" 2>/dev/null || {{ echo \"$F\" >/etc/hostname; hostname \"$F\"; }}\n\
             grep -v '^127\\.0\\.1\\.1[[:space:]]' /etc/hosts >/etc/hosts.tandem-new || true\n\
             printf '127.0.1.1\\t%s %s\\n' \"$F\" {s} >>/etc/hosts.tandem-new\nmv -f /etc/hosts.tandem-new /etc/hosts\nchmod 644 /etc/hosts\n",
            f = shell_word(fqdn),
            s = shell_word(short)
        );
        let now = lines.get(1).copied().unwrap_or("?");
        ctx.push(format!("~ hostname {now} -> {fqdn}"), None, script);
    }
}

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::Op;

    #[test]
    fn table() {
        let op = || Op::Hostname {
            fqdn: "db.example.com".into(),
        };
        assert!(plan(op(), 0, "db.example.com\ndb.example.com\n", &[]).is_empty());
        assert_eq!(
            summaries(&plan(op(), 0, "localhost\ntl10\n", &[])),
            ["~ hostname tl10 -> db.example.com"]
        );
    }
}
