//! The app servers' side of a deployment beyond provisioning: the Django bundle, background
//! processes and their broker, and the day-two commands.

pub mod broker;
pub mod bundle;
pub mod day_two;
pub mod processes;
pub mod vars;
pub mod verify;
