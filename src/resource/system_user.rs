//! A system user that runs a service without a login (the project's user).

use super::Context;
use crate::config::identifier::shell_word;
use crate::model::facts::QueryResult;

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

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::Op;

    #[test]
    fn table() {
        let op = || Op::SystemUser {
            user: "shop".into(),
            home: "/srv/shop".into(),
        };
        assert!(
            plan(
                op(),
                0,
                "shop:x:999:999::/srv/shop:/usr/sbin/nologin\n",
                &[]
            )
            .is_empty()
        );
        assert_eq!(
            summaries(&plan(op(), 2, "", &[])),
            ["+ system user shop (home /srv/shop, no login)"]
        );
    }
}
