//! The vocabulary every layer shares: ops and the desired state, probed facts, changes and
//! plans, handlers, modes, ufw rules, the probed state of features, the progress report. No
//! feature logic.

pub mod desired;
pub mod facts;
pub mod handler;
pub mod mode;
pub mod plan;
pub mod platform;
pub mod playbook;
pub mod report;
pub mod state;
pub mod ufw;
pub mod verification;
