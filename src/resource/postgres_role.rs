//! The app's PostgreSQL role: LOGIN, no superuser (unless asked), its password as a SCRAM
//! verifier compared with the stored one, and Django's role settings.

use super::{Context, psql_script};
use crate::config::identifier::{sql_ident, sql_literal};
use crate::postgres::scram;
use crate::postgres::sql;

pub fn plan(ctx: &mut Context, role: &str, superuser: bool, settings: &[(String, String)]) {
    let mut sql_shown = Vec::new();
    let mut sql_run = Vec::new();
    let mut what = Vec::new();
    let password = ctx.db_password.expose();
    let redacted = "'<redacted SCRAM-SHA-256 verifier>'";
    match &ctx.pg.role {
        None => {
            let verifier = sql_literal(&scram::verifier(password));
            sql_shown.push(sql::create_role(role, superuser, redacted));
            sql_run.push(format!(
                "DO $tandem$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) THEN CREATE ROLE {}; END IF; END $tandem$;",
                sql_literal(role),
                sql_ident(role)
            ));
            sql_run.push(format!(
                "ALTER ROLE {} LOGIN {} NOCREATEDB NOCREATEROLE PASSWORD {verifier};",
                sql_ident(role),
                if superuser {
                    "SUPERUSER"
                } else {
                    "NOSUPERUSER"
                }
            ));
            what.push("create".to_string());
        }
        Some(have) => {
            if have.superuser != superuser || !have.login || have.createdb || have.createrole {
                let attrs = format!(
                    "ALTER ROLE {} LOGIN {} NOCREATEDB NOCREATEROLE;",
                    sql_ident(role),
                    if superuser {
                        "SUPERUSER"
                    } else {
                        "NOSUPERUSER"
                    }
                );
                sql_shown.push(attrs.clone());
                sql_run.push(attrs);
                what.push("attributes".to_string());
            }
            if !scram::matches(&have.password, password) {
                let verifier = sql_literal(&scram::verifier(password));
                sql_shown.push(sql::set_role_password(role, redacted));
                sql_run.push(sql::set_role_password(role, &verifier));
                what.push("password".to_string());
            }
        }
    }
    for (name, value) in settings {
        // PostgreSQL stores names in their canonical case (`TimeZone=UTC`).
        let want = format!("{name}={value}");
        if !ctx
            .pg
            .role_settings
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&want))
        {
            let s = sql::role_setting(role, name, value);
            sql_shown.push(s.clone());
            sql_run.push(s);
            if !what.contains(&"create".to_string()) {
                what.push(name.clone());
            }
        }
    }
    if sql_run.is_empty() {
        return;
    }
    let verb = if ctx.pg.role.is_none() { "+" } else { "~" };
    let summary = format!("{verb} role {role}: {}", what.join(", "));
    let script = psql_script(None, &sql_run.join("\n"));
    ctx.push(summary, Some(sql_shown.join("\n")), script);
}

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::Op;

    fn role() -> Op {
        Op::PostgresRole {
            role: "shop".into(),
            superuser: false,
            settings: vec![("timezone".into(), "UTC".into())],
        }
    }

    #[test]
    fn table() {
        let verifier = crate::postgres::scram::verifier("c0rrect horse");
        for (what, pg, expected) in [
            ("missing", String::new(), vec!["+ role shop: create"]),
            (
                "converged",
                format!("role|shop|f|t|f|f|{verifier}\nrolesetting|TimeZone=UTC\n"),
                vec![],
            ),
            (
                "another password",
                format!(
                    "role|shop|f|t|f|f|{}\nrolesetting|TimeZone=UTC\n",
                    crate::postgres::scram::verifier("other")
                ),
                vec!["~ role shop: password"],
            ),
            (
                "made superuser by hand",
                format!("role|shop|t|t|f|f|{verifier}\nrolesetting|TimeZone=UTC\n"),
                vec!["~ role shop: attributes"],
            ),
        ] {
            let changes = plan(role(), 0, "", &[("pg", 0, &pg)]);
            assert_eq!(summaries(&changes), expected, "{what}");
            for c in &changes {
                let shown = c.detail.clone().unwrap_or_default();
                assert!(
                    !shown.contains("SCRAM-SHA-256$") && !shown.contains("c0rrect"),
                    "{what}: {shown}"
                );
            }
        }
        // PostgreSQL stopped: nothing planned, a note instead.
        assert!(plan(role(), 0, "", &[("pg", 4, "")]).is_empty());
        // A cluster's standby is read-only: even another password is the primary's to set.
        let standby = format!(
            "role|shop|f|t|f|f|{}\nrecovery|t\n",
            crate::postgres::scram::verifier("other")
        );
        assert!(plan(role(), 0, "", &[("pg", 0, &standby)]).is_empty());
    }
}
