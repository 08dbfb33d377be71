//! The PostgreSQL wing's template variables: the database Django uses and the cluster's
//! settings.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct PgVars {
    pub version: String,
    /// Debian/Ubuntu's cluster configuration directory.
    pub conf_dir: String,
    /// The machine the settings are derived from, in words.
    pub machine: String,
    /// Settings derived from the machine and the app, or from `database.settings`.
    pub tuning: Vec<crate::postgres::tuning::Setting>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DbVars {
    pub name: String,
    pub role: String,
    pub host: String,
    pub port: u16,
}
