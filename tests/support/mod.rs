//! Helpers shared by the integration tests.
pub mod acme;
pub mod browser;
pub mod config;
pub mod lab;
pub mod scenario;
