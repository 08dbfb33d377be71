//! tandem: Django on an app server and PostgreSQL on its own server, over SSH, from one YAML file.

pub mod apply;
pub mod assets;
pub mod cli;
pub mod config;
pub mod desired;
pub mod diagnostic;
pub mod engine;
pub mod facts;
pub mod identifier;
pub mod init;
pub mod local_file;
pub mod plan;
pub mod playbook;
pub mod postgres;
pub mod release;
pub mod render;
pub mod scram;
pub mod script;
pub mod secret;
pub mod sql;
pub mod templates;
pub mod transport;
pub mod ufw;
pub mod vars;
pub mod verify;
pub mod yaml;
