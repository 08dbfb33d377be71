//! The live release's own static files, on a server an older tandem set up. It collected
//! every release's static files into one shared directory (`/srv/<project>/static`); each
//! release now has its own (`<release>/.tandem-public<static_url>`, collected when it is taken
//! live). This step collects them into the live release, in the provisioning before the env
//! file, gunicorn's units and the nginx site change to expect them (and restart gunicorn):
//! nginx never looks for files that are not there, and a project using
//! `ManifestStaticFilesStorage` never starts without its manifest.

use super::Context;
use crate::config::identifier::shell_word;
use crate::engine::vars::PUBLIC;
use crate::model::desired::LiveReleaseStatic;
use crate::model::facts::QueryResult;
use crate::resource::script::assignments;

/// Prints the live release's directory name when it has no static files of its own; nothing
/// when it has, or when no release is live.
pub fn probe(spec: &LiveReleaseStatic) -> String {
    format!(
        "cd {root} 2>/dev/null || exit 0; [ -L current ] || exit 0; [ -d current/{dir} ] || readlink current | sed 's|.*/||'; true",
        root = shell_word(&spec.root),
        dir = shell_word(&spec.static_dir),
    )
}

pub fn plan(ctx: &mut Context, r: &QueryResult, spec: &LiveReleaseStatic) {
    let id = r.stdout.trim();
    if id.is_empty() {
        return;
    }
    // The name comes from the server: one path component, or nothing is planned.
    if id.contains('/') || id == "." || id == ".." || id.contains('\n') {
        ctx.note(&format!(
            "the live release's link names `{}`, not a release directory: its static files were not checked",
            id.escape_debug()
        ));
        return;
    }
    ctx.push(
        format!("+ static files of release {id}: collected into it (an older tandem kept every release's in one directory)"),
        None,
        collect_script(spec, id),
    );
}

/// collectstatic for release `id` into a directory beside the final one, moved into place when
/// it is complete (a run cut off midway leaves no half set that the probe would take as done).
fn collect_script(spec: &LiveReleaseStatic, id: &str) -> String {
    let release = format!("{}/releases/{id}", spec.root);
    let partial = format!("{PUBLIC}.partial");
    format!(
        "set -e\numask 022\n{}{}\
         [ -x \"$R/venv/bin/python\" ] || {{ echo \"release $(basename \"$R\") has no virtualenv: deploy a release\" >&2; exit 1; }}\n\
         rm -rf \"$R/$PARTIAL\"\n\
         runuser -u \"$APPUSER\" -- mkdir -p \"$STATIC\"\n\
         manage collectstatic --noinput -v0 >&2\n\
         mv -T \"$R/$PARTIAL\" \"$R/$PUBLIC\"\n",
        assignments(&[
            ("R", &release),
            ("APPUSER", &spec.user),
            ("ENVFILE", &spec.env_file),
            ("PARTIAL", &partial),
            ("PUBLIC", PUBLIC),
            (
                "STATIC",
                &format!(
                    "{release}/{partial}{}",
                    spec.static_dir.strip_prefix(PUBLIC).unwrap_or_default()
                ),
            ),
        ]),
        crate::resource::release::manage_function(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::table::{plan, summaries};
    use crate::model::desired::{LiveReleaseStatic, Op};

    fn op() -> Op {
        Op::LiveReleaseStatic(LiveReleaseStatic {
            root: "/srv/shop".into(),
            static_dir: ".tandem-public/assets/v1".into(),
            env_file: "/etc/shop/env".into(),
            user: "shop".into(),
        })
    }

    /// Nothing live, or the live release with its own: nothing to do. Without: collected into
    /// a partial directory, moved into place once complete. A name that is not one path
    /// component (a server that lies) plans nothing.
    #[test]
    fn table() {
        assert!(plan(op(), 0, "", &[]).is_empty());
        let changes = plan(op(), 0, "20261201T000000Z-c0dec0dec0de\n", &[]);
        assert_eq!(
            summaries(&changes),
            [
                "+ static files of release 20261201T000000Z-c0dec0dec0de: collected into it (an older tandem kept every release's in one directory)"
            ]
        );
        let script = &changes[0].script;
        assert!(
            script.contains(
                "STATIC=/srv/shop/releases/20261201T000000Z-c0dec0dec0de/.tandem-public.partial/assets/v1\n"
            ),
            "{script}"
        );
        assert!(
            script.contains("DJANGO_STATIC_ROOT=\"$STATIC\""),
            "{script}"
        );
        assert!(
            script.ends_with("mv -T \"$R/$PARTIAL\" \"$R/$PUBLIC\"\n"),
            "{script}"
        );
        crate::resource::table::assert_shell_syntax(script, "collect script");
        for lie in ["../../etc", "..", "a\nb"] {
            assert!(plan(op(), 0, lie, &[]).is_empty(), "{lie}");
        }
    }
}
