//! What the offline commands share (`check`, `render`): the config, templates and assumed facts.

use super::*;

pub(crate) fn load(args: &impl AsRef<std::path::Path>) -> anyhow::Result<config::Config> {
    let loaded = config::load(args.as_ref())?;
    for warning in &loaded.warnings {
        say!("{}", error_screen(&warning.to_string()));
    }
    Ok(loaded.config)
}

pub(crate) fn templates(args: &ConfigArgs) -> anyhow::Result<Templates> {
    let assets = match &args.overrides {
        Some(dir) => Assets::with_overrides(dir)?,
        None => Assets::builtin(),
    };
    Ok(Templates::new(assets))
}

pub(crate) fn facts(args: &OfflineArgs) -> HostFacts {
    HostFacts {
        postgres_version: args.postgres_version.to_string(),
        // Offline, the db server's machine is not known: PostgreSQL's settings are shown for
        // the one the flags describe (`Machine::assumed()`'s by default) and say so.
        machine: match (args.db_memory_mib, args.db_cpus, args.db_disk) {
            (None, None, None) => crate::postgres::tuning::Machine::assumed(),
            (memory, cpus, disk) => {
                let assumed = crate::postgres::tuning::Machine::assumed();
                crate::postgres::tuning::Machine {
                    memory_mib: memory.unwrap_or(assumed.memory_mib),
                    cpus: cpus.unwrap_or(assumed.cpus),
                    rotational: match disk {
                        Some(DiskArg::Rotational) => Some(true),
                        Some(DiskArg::Unknown) => None,
                        Some(DiskArg::Ssd) | None => Some(false),
                    },
                    assumed: false,
                }
            }
        },
    }
}

pub(crate) fn load_and_render(args: &OfflineArgs) -> anyhow::Result<(config::Config, usize)> {
    let config = load(&args.config)?;
    let mut templates = templates(&args.config)?;
    let all = render::desired_all(&config, &mut templates, &facts(args))?;
    let count = render::rendered_files(&config, &all).len();
    Ok((config, count))
}
