//! A system user that runs a service without a login (the project's user).

use super::Context;
use crate::facts::QueryResult;
use crate::identifier::shell_word;

/// `getent passwd USER`: found or not.
pub fn probe(user: &str) -> String {
    format!("getent passwd {}", shell_word(user))
}

pub fn plan(ctx: &mut Context, r: &QueryResult, user: &str, home: &str) {
    if !r.ok() {
        let script = format!(
            "set -e\ngetent passwd {u} >/dev/null || useradd --system --user-group --home-dir {h} --no-create-home --shell /usr/sbin/nologin {u}\n",
            u = shell_word(user),
            h = shell_word(home)
        );
        ctx.push(
            format!("+ system user {user} (home {home}, no login)"),
            None,
            script,
        );
    }
}
