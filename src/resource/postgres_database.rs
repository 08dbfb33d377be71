//! The app's database: owned by its role, closed to PUBLIC.

use super::{Context, psql_script};
use crate::config::identifier::{sql_ident, sql_literal};
use crate::postgres::sql;

pub fn plan(ctx: &mut Context, name: &str, owner: &str) {
    let mut shown = Vec::new();
    let mut run = Vec::new();
    let summary = match &ctx.pg.database {
        None => {
            shown.push(sql::create_database(name, owner));
            run.push(format!(
                "SELECT {} WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {}) \\gexec",
                sql_literal(&sql::create_database(name, owner)),
                sql_literal(name)
            ));
            shown.push(sql::revoke_public_connect(name));
            run.push(sql::revoke_public_connect(name));
            format!("+ database {name} owned by {owner}")
        }
        Some((have_owner, public_connect)) => {
            if have_owner != owner {
                let s = format!(
                    "ALTER DATABASE {} OWNER TO {};",
                    sql_ident(name),
                    sql_ident(owner)
                );
                shown.push(s.clone());
                run.push(s);
            }
            if *public_connect {
                shown.push(sql::revoke_public_connect(name));
                run.push(sql::revoke_public_connect(name));
            }
            if run.is_empty() {
                return;
            }
            format!("~ database {name}")
        }
    };
    let script = psql_script(None, &run.join("\n"));
    ctx.push(summary, Some(shown.join("\n")), script);
}

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::Op;

    #[test]
    fn table() {
        let op = || Op::PostgresDatabase {
            name: "shop".into(),
            owner: "shop".into(),
        };
        for (pg, expected) in [
            ("", vec!["+ database shop owned by shop"]),
            ("database|shop|shop|f\n", vec![]),
            ("database|shop|postgres|f\n", vec!["~ database shop"]),
            ("database|shop|shop|t\n", vec!["~ database shop"]),
        ] {
            assert_eq!(
                summaries(&plan(op(), 0, "", &[("pg", 0, pg)])),
                expected,
                "{pg:?}"
            );
        }
    }
}
