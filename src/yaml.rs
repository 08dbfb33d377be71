//! The one place tandem touches YAML: parsing documents into typed values with source locations.
//!
//! serde_yaml is archived upstream; serde-saphyr reports line and column for every error and
//! gives `Spanned` values, so validation after parsing can point at the offending line too.

use serde::de::DeserializeOwned;

pub use serde_saphyr::Spanned;

/// Where in a YAML document something is: 1-based line and column, 0 when unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl Position {
    pub fn of<T>(spanned: &Spanned<T>) -> Self {
        let loc = spanned.referenced;
        Position {
            line: loc.line(),
            column: loc.column(),
        }
    }
}

/// A YAML syntax or shape error: the message without the library's snippet, and where it is.
#[derive(Debug)]
pub struct ParseError {
    pub message: String,
    pub position: Position,
}

/// Parses `text` into `T`; errors carry the position serde-saphyr found.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ParseError> {
    serde_saphyr::from_str(text).map_err(|err| {
        let position = err
            .location()
            .map(|loc| Position {
                line: loc.line(),
                column: loc.column(),
            })
            .unwrap_or_default();
        ParseError {
            message: err.without_snippet().to_string(),
            position,
        }
    })
}
