//! Extensions in the app's database, created as postgres so the role needs no superuser.

use super::{Context, psql_script};
use crate::sql;

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
