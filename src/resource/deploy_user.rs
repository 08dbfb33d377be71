//! The deploy user: exists, is in `sudo`, and has exactly the configured authorized keys.
//! The operator's way in, so its change is under the lockout guard.

use super::{Context, unified};
use crate::config::identifier::shell_word;
use crate::model::facts::QueryResult;
use crate::resource::script::payload;

/// Exit 3 when the user is missing; else its groups, `---`, its authorized_keys.
pub fn probe(user: &str) -> String {
    format!(
        "getent passwd {u} >/dev/null || exit 3; id -nG {u}; echo ---; \\
         h=$(getent passwd {u} | cut -d: -f6); cat \"$h/.ssh/authorized_keys\" 2>/dev/null; true",
        u = shell_word(user)
    )
}

pub fn plan(ctx: &mut Context, r: &QueryResult, user: &str, keys: &[String]) {
    let want_keys: String = keys.iter().map(|k| format!("{k}\n")).collect();
    let (exists, in_sudo, have_keys) = if r.status == 3 || !r.ok() {
        (false, false, String::new())
    } else {
        let (head, keys_part) = r.stdout.split_once("---\n").unwrap_or((&r.stdout, ""));
        let groups = head.lines().next().unwrap_or("");
        (
            true,
            groups.split_whitespace().any(|g| g == "sudo"),
            keys_part.to_string(),
        )
    };
    if exists && in_sudo && have_keys == want_keys {
        return;
    }
    let u = shell_word(user);
    let script = format!(
        "set -e\nid -u {u} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {u}\n\
         usermod -aG sudo {u}\nH=$(getent passwd {u} | cut -d: -f6)\n\
         install -d -m 700 -o {u} -g \"$(id -gn {u})\" \"$H/.ssh\"\n\
         {}\n\
         chown {u}:\"$(id -gn {u})\" \"$H/.ssh/authorized_keys.tandem-new\"\nchmod 600 \"$H/.ssh/authorized_keys.tandem-new\"\n\
         mv -f \"$H/.ssh/authorized_keys.tandem-new\" \"$H/.ssh/authorized_keys\"\n",
        payload(
            want_keys.as_bytes(),
            ">\"$H/.ssh/authorized_keys.tandem-new\""
        )
    );
    let summary = if !exists {
        format!("+ user {user} (sudo) with {} authorized key(s)", keys.len())
    } else {
        format!("~ user {user}: sudo group and authorized keys")
    };
    let detail =
        (have_keys != want_keys).then(|| unified(&have_keys, &want_keys, "authorized_keys"));
    // The operator's way in: under the lockout guard like sshd and ufw.
    ctx.push(summary, detail, script).guarded = true;
}

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::Op;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHYMxxG3vqHCA+eug0ptUklTD5djvx5I6fEUaBbLhMuQ op@x";

    #[test]
    fn table() {
        let op = || Op::DeployUser {
            user: "deploy".into(),
            authorized_keys: vec![KEY.into()],
        };
        let keys = format!("{KEY}\n");
        for (status, answer, expected) in [
            (
                3,
                String::new(),
                vec!["+ user deploy (sudo) with 1 authorized key(s)"],
            ),
            (0, format!("deploy sudo\n---\n{keys}"), vec![]),
            (
                0,
                format!("deploy\n---\n{keys}"),
                vec!["~ user deploy: sudo group and authorized keys"],
            ),
            (
                0,
                "deploy sudo\n---\nssh-ed25519 AAAAother x\n".to_string(),
                vec!["~ user deploy: sudo group and authorized keys"],
            ),
        ] {
            let changes = plan(op(), status, &answer, &[]);
            assert_eq!(summaries(&changes), expected, "{answer:?}");
            // The operator's way in: always under the lockout guard.
            assert!(changes.iter().all(|c| c.guarded));
        }
    }
}
