//! The `--json` documents (`plan --json`, `verify --json`): the body's fields after a
//! `format_version`, so a consumer can tell when their shape changed. The README describes them.

use serde::Serialize;

/// Version of the documents' shape: raised when a field changes meaning or goes away (new
/// fields do not raise it).
pub const FORMAT_VERSION: u32 = 1;

/// `body` (a struct) as a pretty-printed document with `format_version` first.
pub fn document(body: &impl Serialize) -> anyhow::Result<String> {
    #[derive(Serialize)]
    struct Document<'a, T> {
        format_version: u32,
        #[serde(flatten)]
        body: &'a T,
    }
    Ok(serde_json::to_string_pretty(&Document {
        format_version: FORMAT_VERSION,
        body,
    })?)
}

/// What a `--json` command prints on stdout when it fails: the error's message and, for a
/// config that does not load, each diagnostic with its place and fix (never the source line:
/// the message already masks secrets, the excerpt is for terminals). The exit code is the
/// failure's as always.
pub fn failure(err: &anyhow::Error) -> anyhow::Result<String> {
    #[derive(Serialize)]
    struct Failure {
        ok: bool,
        error: Error,
    }
    #[derive(Serialize)]
    struct Error {
        message: String,
        diagnostics: Vec<Diagnostic>,
        /// Each server's state when the failure was reaching them (empty otherwise).
        hosts: Vec<Host>,
    }
    #[derive(Serialize)]
    struct Host {
        name: String,
        /// `reachable` or `unreachable`.
        state: &'static str,
        error: Option<String>,
    }
    #[derive(Serialize)]
    struct Diagnostic {
        severity: &'static str,
        file: String,
        line: u64,
        column: u64,
        field: String,
        message: String,
        fix: Option<String>,
    }
    let diagnostics: Vec<Diagnostic> = err
        .downcast_ref::<crate::config::diagnostic::Diagnostics>()
        .map(|found| {
            found
                .0
                .iter()
                .map(|d| Diagnostic {
                    severity: match d.severity {
                        crate::config::diagnostic::Severity::Error => "error",
                        crate::config::diagnostic::Severity::Warning => "warning",
                    },
                    file: d.file.display().to_string(),
                    line: d.position.line,
                    column: d.position.column,
                    field: d.field.clone(),
                    message: d.message.clone(),
                    fix: d.fix.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let message = match diagnostics.iter().filter(|d| d.severity == "error").count() {
        0 => format!("{err:#}"),
        n => format!("the config has {n} error(s)"),
    };
    let hosts = err
        .downcast_ref::<crate::engine::transport::Unreachable>()
        .map(|unreachable| {
            unreachable
                .servers
                .iter()
                .map(|s| Host {
                    name: s.name.clone(),
                    state: match s.error {
                        None => "reachable",
                        Some(_) => "unreachable",
                    },
                    error: s.error.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    document(&Failure {
        ok: false,
        error: Error {
            message,
            diagnostics,
            hosts,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_first_and_the_body_follows() {
        #[derive(Serialize)]
        struct Body {
            checks: Vec<u8>,
        }
        let text = document(&Body { checks: vec![1] }).unwrap();
        assert!(
            text.starts_with("{\n  \"format_version\": 1,\n  \"checks\""),
            "{text}"
        );
        assert!(document(&5).is_err());
    }

    #[test]
    fn a_failure_to_reach_servers_lists_each_servers_state() {
        use crate::engine::transport::{ServerConnection, Unreachable};
        let err = anyhow::Error::new(Unreachable {
            servers: vec![
                ServerConnection {
                    name: "db".into(),
                    error: Some("connecting to db: refused".into()),
                },
                ServerConnection {
                    name: "app1".into(),
                    error: None,
                },
            ],
        });
        let doc: serde_json::Value = serde_json::from_str(&failure(&err).unwrap()).unwrap();
        assert_eq!(doc["error"]["message"], "connecting to db: refused");
        let hosts = doc["error"]["hosts"].as_array().unwrap();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0]["name"], "db");
        assert_eq!(hosts[0]["state"], "unreachable");
        assert_eq!(hosts[1]["state"], "reachable");
        assert!(hosts[1]["error"].is_null());
    }
}
