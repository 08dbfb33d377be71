//! Helpers shared by the integration tests.
pub mod lab;
pub mod scenario;
