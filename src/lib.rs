//! tandem: Django on an app server and PostgreSQL on its own server, over SSH, from one YAML file.
//!
//! The layers, bottom up: `config` (tandem.yml and what it names), `model` (the shared
//! vocabulary), `resource` (the generic kinds of things on a host), the feature wings
//! (`postgres`, `cluster`, `tls`, `backup`, `app`), `engine` (expand, probe, plan, apply over SSH),
//! `verify`, and `cli` at the edge.

pub mod app;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod model;
pub mod postgres;
pub mod resource;
pub mod tls;
pub mod verify;
