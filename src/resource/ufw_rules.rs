//! The ufw rule set: default policies, tandem's allow rules, enabled; tandem's own rules the
//! config no longer wants pruned; and on the database server any rule that opens PostgreSQL's
//! port wider than its clients deleted, whoever added it. Answered by one shared query
//! (`ufw::PROBE`), read into `UfwState`.

use super::Context;
use crate::config::identifier::shell_word;
use crate::model::desired::Op;
use crate::model::playbook::Phase;
use crate::model::ufw::UfwRule;
use crate::postgres;

pub fn plan_defaults(ctx: &mut Context) {
    if ctx.ufw.incoming != "deny" || ctx.ufw.outgoing != "allow" {
        let script = "set -e\nufw default deny incoming\nufw default allow outgoing\n".to_string();
        ctx.push(
            "~ ufw default deny incoming, allow outgoing".into(),
            None,
            script,
        )
        .guarded = true;
    }
}

pub fn plan_allow(ctx: &mut Context, rule: &UfwRule) {
    if !ctx.ufw.has(rule) {
        let script = format!("set -e\n{rule}\n");
        ctx.push(format!("+ {rule}"), None, script).guarded = true;
    }
}

pub fn plan_enable(ctx: &mut Context) {
    if !ctx.ufw.active {
        let script = "set -e\nufw --force enable\n".to_string();
        ctx.push("+ ufw --force enable".into(), None, script)
            .guarded = true;
    }
}

/// tandem's own ufw rules that the config no longer wants (an app server that moved or
/// left): deleted at the end, after the new rules are in.
pub fn prune(ctx: &mut Context) {
    let wanted: Vec<&UfwRule> = ctx
        .desired
        .tasks
        .iter()
        .filter_map(|t| match &t.op {
            Op::UfwAllow(rule) => Some(rule),
            _ => None,
        })
        .collect();
    let unwanted: Vec<UfwRule> = ctx.ufw.unwanted(&wanted).into_iter().cloned().collect();
    for rule in unwanted {
        let args: Vec<String> = rule.args().iter().map(|w| shell_word(w)).collect();
        let script = format!("set -e\nufw delete {}\n", args.join(" "));
        let c = ctx.push(format!("- {rule} (no longer in the config)"), None, script);
        c.role = Phase::Base;
        c.step = "Prune ufw rules tandem no longer wants".into();
        c.guarded = true;
    }
}

/// On the database server: any ufw rule that lets others than the database's clients
/// (the app servers and `database.allow`) reach PostgreSQL's port, whoever added it, is
/// deleted after tandem's own rules are in.
pub fn close_database(ctx: &mut Context) {
    let clients: Vec<std::net::IpAddr> = ctx
        .desired
        .tasks
        .iter()
        .filter_map(|t| match &t.op {
            Op::UfwAllow(rule) if rule.port == postgres::PORT => rule.from,
            _ => None,
        })
        .collect();
    if clients.is_empty() {
        return;
    }
    let wider: Vec<_> = ctx
        .ufw
        .opening_wider(postgres::PORT, "tcp", &clients)
        .into_iter()
        .cloned()
        .collect();
    for rule in wider {
        let script = format!("set -e\n{}\n", rule.delete_command());
        let c = ctx.push(
            format!(
                "- ufw rule {} (admits more than the app servers and database.allow)",
                rule.describe()
            ),
            None,
            script,
        );
        c.role = Phase::Db;
        c.step = "Close PostgreSQL's port to everyone but its clients".into();
        c.guarded = true;
    }
}

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::Op;
    use crate::model::ufw::UfwRule;

    const CONVERGED: &str = "ENABLED=yes\nDEFAULT_INPUT_POLICY=\"DROP\"\nDEFAULT_OUTPUT_POLICY=\"ACCEPT\"\n\
### tuple ### allow tcp 5432 0.0.0.0/0 any 10.0.0.2 in comment=74616e64656d3a20706f737467726573716c2066726f6d2061707031\n";

    fn postgres_rule() -> Op {
        Op::UfwAllow(UfwRule {
            port: 5432,
            proto: "tcp".into(),
            from: Some("10.0.0.2".parse().unwrap()),
            comment: "tandem: postgresql from app1".into(),
        })
    }

    #[test]
    fn table() {
        for (what, ufw, expected) in [
            ("converged", CONVERGED.to_string(), vec![]),
            (
                "not installed",
                String::new(),
                vec![
                    "+ ufw allow proto tcp from 10.0.0.2 to any port 5432 comment 'tandem: postgresql from app1'",
                ],
            ),
            (
                "opened to all by hand",
                format!("{CONVERGED}### tuple ### allow any 5432 0.0.0.0/0 any 0.0.0.0/0 in\n"),
                vec![
                    "- ufw rule allow from anywhere to port 5432/any (admits more than the app servers and database.allow)",
                ],
            ),
            (
                "an app server that left",
                format!(
                    "{CONVERGED}### tuple ### allow tcp 5432 0.0.0.0/0 any 10.0.0.9 in comment=74616e64656d3a20706f737467726573716c2066726f6d2061707032\n"
                ),
                vec![
                    "- ufw allow proto tcp from 10.0.0.9 to any port 5432 comment 'tandem: postgresql from app2' (no longer in the config)",
                    "- ufw rule allow from 10.0.0.9 to port 5432/tcp (admits more than the app servers and database.allow)",
                ],
            ),
        ] {
            let status = if ufw.is_empty() { 3 } else { 0 };
            let changes = plan(postgres_rule(), 0, "", &[("ufw", status, &ufw)]);
            assert_eq!(summaries(&changes), expected, "{what}");
            assert!(changes.iter().all(|c| c.guarded), "{what}");
        }
        assert_eq!(
            summaries(&plan(Op::UfwEnable, 0, "", &[("ufw", 0, "ENABLED=no\n")])),
            ["+ ufw --force enable"]
        );
        assert_eq!(
            summaries(&plan(Op::UfwDefaults, 0, "", &[("ufw", 0, "ENABLED=no\n")])),
            ["~ ufw default deny incoming, allow outgoing"]
        );
    }
}
