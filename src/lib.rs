//! tandem: Django on an app server and PostgreSQL on its own server, over SSH, from one YAML file.

pub mod assets;
pub mod cli;
pub mod config;
pub mod desired;
pub mod diagnostic;
pub mod identifier;
pub mod init;
pub mod playbook;
pub mod render;
pub mod sql;
pub mod templates;
pub mod ufw;
pub mod vars;
pub mod yaml;
pub mod apply;
pub mod engine;
pub mod facts;
pub mod plan;
pub mod postgres;
pub mod scram;
pub mod script;
pub mod secret;
pub mod transport;
