//! Extensions in the app's database, created as postgres so the role needs no superuser.

use super::{Context, psql_script};
use crate::postgres::sql;

pub fn plan(ctx: &mut Context, database: &str, names: &[String]) {
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !ctx.pg.extensions.contains(n))
        .collect();
    if !missing.is_empty() {
        let sql: Vec<String> = missing.iter().map(|n| sql::create_extension(n)).collect();
        let script = psql_script(Some(database), &sql.join("\n"));
        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        ctx.push(
            format!("+ extensions {} in {database}", names.join(", ")),
            Some(sql.join("\n")),
            script,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::Op;

    #[test]
    fn table() {
        let op = || Op::PostgresExtensions {
            database: "shop".into(),
            names: vec!["citext".into(), "uuid-ossp".into()],
        };
        for (pg, expected) in [
            (
                "extension|plpgsql\n",
                vec!["+ extensions citext, uuid-ossp in shop"],
            ),
            (
                "extension|plpgsql\nextension|citext\n",
                vec!["+ extensions uuid-ossp in shop"],
            ),
            ("extension|citext\nextension|uuid-ossp\n", vec![]),
        ] {
            assert_eq!(
                summaries(&plan(op(), 0, "", &[("pg", 0, pg)])),
                expected,
                "{pg:?}"
            );
        }
    }
}
