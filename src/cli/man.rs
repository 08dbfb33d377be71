//! `tandem man`: a page per command (`tandem(1)`, `tandem-plan(1)`, `tandem-backup-list(1)`,
//! ...), clap's sections followed by the ones sysadmins look for: EXIT STATUS, ENVIRONMENT,
//! FILES, EXAMPLES, SEE ALSO.

use clap::CommandFactory;

use super::args::Cli;

/// Each page's file name (`tandem-plan.1`) and its roff.
pub fn pages() -> anyhow::Result<Vec<(String, String)>> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut pages = Vec::new();
    collect(&root, &mut pages)?;
    let names: Vec<String> = pages.iter().map(|(name, _)| name.clone()).collect();
    for (name, page) in &mut pages {
        page.push_str(&see_also(name, &names));
    }
    Ok(pages)
}

fn collect(cmd: &clap::Command, pages: &mut Vec<(String, String)>) -> anyhow::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut roff = Vec::new();
    man.render(&mut roff)?;
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string();
    let mut page = String::from_utf8_lossy(&roff).into_owned();
    page.push_str(&sections(&name));
    pages.push((format!("{name}.1"), page));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, pages)?;
    }
    Ok(())
}

/// Roff for a section heading and its paragraphs (text written plainly: no roff in it).
fn section(heading: &str, paragraphs: &[&str]) -> String {
    let mut s = format!(".SH \"{heading}\"\n");
    for p in paragraphs {
        s.push_str(".PP\n");
        s.push_str(&escape(p));
        s.push('\n');
    }
    s
}

/// A line roff reads as text: a leading `.` or `'` would be a request, `\` an escape.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    match text.starts_with(['.', '\'']) {
        true => format!("\\&{text}"),
        false => text,
    }
}

/// The sections every page has, with the command's own examples.
fn sections(name: &str) -> String {
    let command = name.strip_prefix("tandem-").unwrap_or("");
    let mut s = section(
        "EXIT STATUS",
        &[
            "0 success.",
            "1 any error: a usage error, a bad config, an unreachable server, a failed change or check.",
            "2 only from plan --detailed-exitcode: changes are pending.",
            "141 whoever read standard output or standard error closed it; tandem stopped quietly and changed nothing more.",
        ],
    );
    s.push_str(&section(
        "ENVIRONMENT",
        &[
            "The variables the config names for its secrets, e.g. TANDEM_DB_PASSWORD (database.password), TANDEM_BACKUP_KEY (backup.encryption_key), TANDEM_REDIS_PASSWORD (broker.password). plan and apply need them; verify compares the files made from them and names those it could not compare; deploy and rollback ship or switch code and need none (deploy then does not compare the provisioning); status, logs, manage, releases and the offline commands read none.",
            "TANDEM_SSH_CONFIG: the ssh_config file, as --ssh-config (a CI runner's own, say). TANDEM_SSH_PERSIST: seconds to keep each connection for the next run, as --ssh-persist. NO_COLOR: no colour unless --color always. TANDEM_DEBUG: detail of each step on standard error.",
        ],
    ));
    s.push_str(&section(
        "FILES",
        &[
            "tandem.yml: the config (-c FILE names another). ~/.ssh/config and known_hosts: how servers are reached (--ssh-config FILE names another config).",
            "On the servers: /var/lib/tandem/audit.log (what each run did, by whom), /var/lib/tandem/backups/RUN (files a run replaced), /srv/PROJECT/releases (the releases kept).",
        ],
    ));
    let examples: &[&str] = match command {
        "" => &[
            "tandem init; tandem check",
            "tandem apply --bootstrap-user root --accept-new-host-keys (the first time)",
            "tandem plan --detailed-exitcode; tandem deploy --yes (from CI)",
        ],
        "init" => &["tandem init (in the Django project: reads manage.py)"],
        "check" => &["tandem check -c prod.yml"],
        "plan" => &[
            "tandem plan --detailed-exitcode (exit 2 when changes are pending)",
            "tandem plan --json | jq .hosts[].changes",
        ],
        "apply" => &[
            "tandem apply --bootstrap-user root --accept-new-host-keys (fresh servers)",
            "tandem apply --yes --json (unattended)",
        ],
        "deploy" => &["tandem deploy --yes"],
        "rollback" => &[
            "tandem rollback --yes",
            "tandem rollback --to 20261206T101500Z-abc123 --yes",
        ],
        "verify" => &["tandem verify --json"],
        "backup-list" => &["tandem backup list --json"],
        "restore" => {
            &["tandem restore --time \"2026-12-06 10:15:00+00\" (into a scratch cluster first)"]
        }
        _ => &[],
    };
    if !examples.is_empty() {
        s.push_str(&section("EXAMPLES", examples));
    }
    s
}

fn see_also(name: &str, names: &[String]) -> String {
    let others: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".1"))
        .filter(|n| *n != name.trim_end_matches(".1"))
        .map(|n| format!("\\fB{}\\fR(1)", n.replace('-', "\\-")))
        .collect();
    format!(".SH \"SEE ALSO\"\n{}\n", others.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_per_command_with_the_sections_sysadmins_look_for() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for wanted in [
            "tandem.1",
            "tandem-plan.1",
            "tandem-apply.1",
            "tandem-backup-list.1",
        ] {
            assert!(names.contains(&wanted), "{wanted}: {names:?}");
        }
        for (name, page) in &pages {
            for heading in ["EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO"] {
                assert!(
                    page.contains(&format!(".SH \"{heading}\"")),
                    "{name}: {heading}"
                );
            }
            // Every page another page points at exists.
            for line in page.lines().filter(|l| l.contains("(1)")) {
                for link in line.split(", ") {
                    let target = link
                        .trim_start_matches("\\fB")
                        .split("\\fR")
                        .next()
                        .unwrap()
                        .replace("\\-", "-");
                    if link.starts_with("\\fB") {
                        assert!(
                            names.contains(&format!("{target}.1").as_str()),
                            "{name}: {target}"
                        );
                    }
                }
            }
        }
        assert!(pages[0].1.contains("detailed"), "plan's exit 2 is said");
    }
}
