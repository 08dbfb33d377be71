//! `Rendering`: every file tandem would install on every server, laid out per host at the path
//! it will have there, plus the steps, packages, SQL and ufw commands. Secrets are redacted.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Config;
use crate::engine::templates::Templates;
use crate::engine::vars::{HostFacts, Secrets, Vars};
use crate::model::desired::{Desired, Op};

/// One output file: its path relative to the output directory, and its text.
#[derive(Debug)]
pub struct RenderedFile {
    pub path: PathBuf,
    pub content: String,
}

/// Expands every server of `config` with redacted secrets and Debian 12's assumed facts.
pub fn desired_all(
    config: &Config,
    templates: &mut Templates,
    facts: &HostFacts,
) -> anyhow::Result<Vec<Desired>> {
    config
        .servers
        .iter()
        .map(|server| {
            let vars = Vars::new(config, server, facts, Secrets::redacted(config));
            crate::engine::expand::expand(config, server, &vars, templates)
                .with_context(|| format!("expanding server {}", server.name))
        })
        .collect()
}

/// The files `tandem render` writes, in a stable order.
pub fn rendered_files(config: &Config, all: &[Desired]) -> Vec<RenderedFile> {
    let password = format!(
        "'<redacted: SCRAM-SHA-256 verifier of {}>'",
        config.database.password.describe()
    );
    let mut out = Vec::new();
    for desired in all {
        let host = PathBuf::from(&desired.server.name);
        let mut add = |rel: &str, content: String| {
            out.push(RenderedFile {
                path: host.join(rel.trim_start_matches('/')),
                content,
            })
        };
        add("tandem/steps.txt", desired.to_string());
        add("tandem/packages.txt", lines(desired.packages()));
        add("tandem/ufw.sh", lines(desired.ufw_commands()));
        let sql = desired.sql(&password);
        if !sql.is_empty() {
            add("tandem/postgres.sql", lines(sql));
        }
        for task in &desired.tasks {
            match &task.op {
                Op::File(file)
                | Op::PostgresFirstStart(file)
                | Op::PostgresConf(crate::model::desired::PostgresConf { file, .. }) => {
                    add(&file.path, file.content.clone())
                }
                Op::PgHbaBlock { path, block } => {
                    add(&format!("{path}.tandem-block"), block.clone())
                }
                Op::DeployUser {
                    user,
                    authorized_keys,
                } => add(
                    &format!("home/{user}/.ssh/authorized_keys"),
                    lines(authorized_keys),
                ),
                _ => {}
            }
        }
    }
    out
}

fn lines<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items.into_iter().fold(String::new(), |mut acc, s| {
        acc.push_str(s.as_ref());
        acc.push('\n');
        acc
    })
}

/// Writes the rendering under `out`, which must be empty or absent.
pub fn write(out: &Path, files: &[RenderedFile]) -> anyhow::Result<()> {
    if out.exists()
        && fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        anyhow::bail!(
            "{} exists and is not empty; choose a new directory or remove it",
            out.display()
        );
    }
    for file in files {
        let path = out.join(&file.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, &file.content).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
