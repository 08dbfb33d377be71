//! The command line: arguments, and what each subcommand does with them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::assets::Assets;
use crate::config;
use crate::init;
use crate::render;
use crate::templates::Templates;
use crate::vars::HostFacts;

#[derive(Parser, Debug)]
#[command(
    name = "tandem",
    version,
    about = "Django on an app server and PostgreSQL on its own server, over SSH, from one YAML file"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug)]
struct ConfigArgs {
    /// The config file.
    #[arg(short, long, default_value = "tandem.yml")]
    config: PathBuf,
    /// Directory whose templates/ and playbooks/ files replace tandem's built-in ones.
    #[arg(long, value_name = "DIR")]
    overrides: Option<PathBuf>,
    /// PostgreSQL major version assumed offline (apply reads the real one from the server).
    #[arg(long, default_value = "15", value_name = "VERSION")]
    postgres_version: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a commented starter tandem.yml (never overwrites).
    Init {
        #[arg(default_value = "tandem.yml")]
        path: PathBuf,
    },
    /// Validate the config and render everything, offline; exit 0 when all is well, 1 otherwise.
    Check(ConfigArgs),
    /// Write every file tandem would install, per server, plus its SQL and ufw commands.
    Render {
        #[command(flatten)]
        args: ConfigArgs,
        /// Output directory (must be empty or absent).
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init { path } => {
            init::write_starter(&path)?;
            eprintln!(
                "wrote {}; edit it, then run `tandem check -c {}`",
                path.display(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => {
            let (config, count) = load_and_render(&args)?;
            let files: usize = count;
            eprintln!(
                "{}: ok, {} servers ({} app, 1 db), {files} files rendered",
                args.config.display(),
                config.servers.len(),
                config.app_servers().count()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Render { args, out } => {
            let loaded = load(&args)?;
            let mut templates = templates(&args)?;
            let facts = facts(&args);
            let all = render::desired_all(&loaded, &mut templates, &facts)?;
            let files = render::rendered_files(&loaded, &all);
            render::write(&out, &files)?;
            eprintln!(
                "wrote {} files for {} servers to {}",
                files.len(),
                all.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(args: &ConfigArgs) -> anyhow::Result<config::Config> {
    let loaded = config::load(&args.config)?;
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    Ok(loaded.config)
}

fn templates(args: &ConfigArgs) -> anyhow::Result<Templates> {
    let assets = match &args.overrides {
        Some(dir) => Assets::with_overrides(dir)?,
        None => Assets::builtin(),
    };
    Ok(Templates::new(assets))
}

fn facts(args: &ConfigArgs) -> HostFacts {
    HostFacts {
        postgres_version: args.postgres_version.clone(),
    }
}

fn load_and_render(args: &ConfigArgs) -> anyhow::Result<(config::Config, usize)> {
    let config = load(args)?;
    let mut templates = templates(args)?;
    let all = render::desired_all(&config, &mut templates, &facts(args))?;
    let count = render::rendered_files(&config, &all).len();
    Ok((config, count))
}
