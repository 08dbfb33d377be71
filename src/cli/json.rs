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
}
