//! The settings a new PostgreSQL cluster starts with (`postgres::FIRST_START_FILE`): a file
//! like any other, but written before the host's packages, so that the cluster the
//! PostgreSQL package creates and starts already listens on the internal IP with tandem's
//! memory settings, and apply does not restart it right after (2-3 s on a fresh db server).

use super::{Context, file};
use crate::config::identifier::shell_word;
use crate::model::desired::FileSpec;
use crate::model::facts::QueryResult;
use crate::model::plan::Change;

pub fn probe(file: &FileSpec) -> String {
    file::probe(&file.path)
}

pub fn plan(ctx: &mut Context, r: &QueryResult, spec: &FileSpec) {
    let before = ctx.changes.len();
    file::plan(ctx, r, spec);
    let dir = std::path::Path::new(&spec.path)
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    for change in &mut ctx.changes[before..] {
        // Before the packages, /etc/postgresql-common does not exist yet: made readable for
        // everyone, as the package would (the file's own script creates missing directories
        // private).
        change.script = format!(
            "(umask 022 && mkdir -p -- {})\n{}",
            shell_word(&dir),
            change.script
        );
        change.before_packages = true;
    }
}

/// Puts the changes that must precede the host's packages in front of its apt transaction,
/// as prepare changes; without one, they stay where they are.
pub fn before_packages(changes: &mut Vec<Change>) {
    let Some(apt) = changes.iter().position(|c| c.prepare) else {
        return;
    };
    let mut moved = Vec::new();
    let mut i = apt;
    while i < changes.len() {
        if changes[i].before_packages {
            let mut change = changes.remove(i);
            change.prepare = true;
            moved.push(change);
        } else {
            i += 1;
        }
    }
    changes.splice(apt..apt, moved);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(summary: &str, prepare: bool, before_packages: bool) -> Change {
        let mut c = Change::new(summary.into(), None, "true\n".into());
        c.prepare = prepare;
        c.before_packages = before_packages;
        c
    }

    #[test]
    fn goes_in_front_of_the_packages_as_a_prepare_change_or_stays() {
        let mut changes = vec![
            change("+ user", false, false),
            change("+ apt install postgresql", true, false),
            change("+ file conf.d", false, false),
            change("+ file createcluster.d", false, true),
        ];
        before_packages(&mut changes);
        let order: Vec<(&str, bool)> = changes
            .iter()
            .map(|c| (c.summary.as_str(), c.prepare))
            .collect();
        assert_eq!(
            order,
            [
                ("+ user", false),
                ("+ file createcluster.d", true),
                ("+ apt install postgresql", true),
                ("+ file conf.d", false),
            ]
        );
        let mut converged = vec![
            change("+ file conf.d", false, false),
            change("+ file createcluster.d", false, true),
        ];
        before_packages(&mut converged);
        assert!(
            !converged[1].prepare,
            "no packages to install: an ordinary change"
        );
    }
}
