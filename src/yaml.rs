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
        let message = err.without_snippet().to_string();
        // The scanner reports a tab where the token before it began (a line early): point at
        // the tab itself.
        let position = if message.contains("tab") {
            first_tab_from(text, position).unwrap_or(position)
        } else {
            position
        };
        ParseError { message, position }
    })
}

/// The first tab at or after `from`.
fn first_tab_from(text: &str, from: Position) -> Option<Position> {
    let first_line = from.line.max(1);
    text.lines()
        .enumerate()
        .map(|(i, line)| (i as u64 + 1, line))
        .skip_while(|(n, _)| *n < first_line)
        .find_map(|(n, line)| {
            let skip = if n == first_line {
                from.column.saturating_sub(1) as usize
            } else {
                0
            };
            let column = line
                .char_indices()
                .filter(|(i, _)| *i >= skip)
                .find(|(_, c)| *c == '\t')
                .map(|(i, _)| line[..i].chars().count() as u64 + 1)?;
            Some(Position { line: n, column })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Doc {
        project: String,
        servers: Vec<String>,
    }

    #[test]
    fn a_tab_is_reported_where_it_is() {
        let err = parse::<Doc>("project: a\n\tservers: []\n").unwrap_err();
        assert_eq!(err.position, Position { line: 2, column: 1 }, "{err:?}");
    }
}
