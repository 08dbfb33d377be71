//! The SQL tandem runs on the database server, every identifier and literal quoted.

use crate::config::identifier::{sql_ident, sql_literal};

/// Django's recommended role settings (docs: "Optimizing PostgreSQL's configuration").
pub const DJANGO_ROLE_SETTINGS: [(&str, &str); 3] = [
    ("client_encoding", "utf8"),
    ("default_transaction_isolation", "read committed"),
    ("timezone", "UTC"),
];

/// `password_sql` is the already-quoted literal: a SCRAM verifier, or a redaction placeholder.
pub fn create_role(role: &str, superuser: bool, password_sql: &str) -> String {
    let su = if superuser {
        "SUPERUSER"
    } else {
        "NOSUPERUSER"
    };
    format!(
        "CREATE ROLE {} LOGIN {su} NOCREATEDB NOCREATEROLE PASSWORD {password_sql};",
        sql_ident(role)
    )
}

pub fn set_role_password(role: &str, password_sql: &str) -> String {
    format!("ALTER ROLE {} PASSWORD {password_sql};", sql_ident(role))
}

pub fn role_setting(role: &str, name: &str, value: &str) -> String {
    format!(
        "ALTER ROLE {} SET {name} TO {};",
        sql_ident(role),
        sql_literal(value)
    )
}

pub fn create_database(name: &str, owner: &str) -> String {
    format!(
        "CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0;",
        sql_ident(name),
        sql_ident(owner)
    )
}

/// Only the app's role connects: other roles on the server cannot open the app's database.
pub fn revoke_public_connect(name: &str) -> String {
    format!(
        "REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC;",
        sql_ident(name)
    )
}

/// Run while connected to the app's database, as postgres.
pub fn create_extension(name: &str) -> String {
    format!("CREATE EXTENSION IF NOT EXISTS {};", sql_ident(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted() {
        assert_eq!(
            role_setting("app", "default_transaction_isolation", "read committed"),
            "ALTER ROLE \"app\" SET default_transaction_isolation TO 'read committed';"
        );
        assert_eq!(
            create_database("db", "app"),
            "CREATE DATABASE \"db\" OWNER \"app\" ENCODING 'UTF8' TEMPLATE template0;"
        );
    }
}
