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

/// Where secrets sit in a YAML document, decided by its schema rather than guessed from a
/// line's text: the byte ranges of every node whose key path the schema calls secret, and the
/// scalars written there (so a message that quotes one can hide it).
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    spans: Vec<std::ops::Range<usize>>,
    words: Vec<String>,
}

/// One step of a node's key path: a mapping key, or an item of a sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Item,
}

impl Secrets {
    /// The secret nodes of `text`: those whose path from the root `is_secret` says hold a
    /// secret (the whole node: a scalar, a flow or block mapping, a sequence). A document that
    /// does not parse keeps what was found before the error; when the error comes where a
    /// secret value was expected, everything after the secret's key counts as secret.
    pub fn find(text: &str, is_secret: impl Fn(&[Step], bool) -> bool) -> Secrets {
        use granit_parser::{Event, Parser};
        enum Frame {
            Mapping { key: Option<String> },
            Sequence,
        }
        let mut secrets = Secrets::default();
        let mut frames: Vec<Frame> = Vec::new();
        // Depth and start of the secret node being walked through, if any.
        let mut open: Option<(usize, usize)> = None;
        // Where the last key ended, for a document that breaks right after a secret key.
        let mut key_end = 0;
        let byte = |m: &granit_parser::Marker| {
            m.byte_offset()
                .unwrap_or_else(|| {
                    text.char_indices()
                        .nth(m.index())
                        .map_or(text.len(), |(i, _)| i)
                })
                .min(text.len())
        };
        let path = |frames: &[Frame]| -> Vec<Step> {
            frames
                .iter()
                .filter_map(|f| match f {
                    Frame::Mapping { key: Some(k) } => Some(Step::Key(k.clone())),
                    Frame::Mapping { key: None } => None,
                    Frame::Sequence => Some(Step::Item),
                })
                .collect()
        };
        let mut parser = Parser::new_from_str(text);
        loop {
            let (event, span) = match parser.next_event() {
                None => break,
                Some(Ok(next)) => next,
                Some(Err(_)) => {
                    let after_secret_key =
                        matches!(frames.last(), Some(Frame::Mapping { key: Some(_) }))
                            && is_secret(&path(&frames), false);
                    match open {
                        Some((_, start)) => secrets.spans.push(start..text.len()),
                        None if after_secret_key => secrets.spans.push(key_end..text.len()),
                        None => {}
                    }
                    break;
                }
            };
            let start = byte(&span.start);
            let end = byte(&span.end);
            // A scalar in key position names the next value; everything else is a node.
            if let (Event::Scalar(value, ..), Some(Frame::Mapping { key: key @ None })) =
                (&event, frames.last_mut())
            {
                if open.is_some() && !matches!(value.as_ref(), "env" | "file") {
                    secrets.words.push(value.to_string());
                }
                *key = Some(value.to_string());
                key_end = end;
                continue;
            }
            let is_node = matches!(
                event,
                Event::Scalar(..)
                    | Event::Alias(..)
                    | Event::MappingStart(..)
                    | Event::SequenceStart(..)
            );
            if is_node
                && open.is_none()
                && is_secret(&path(&frames), matches!(event, Event::MappingStart(..)))
            {
                open = Some((frames.len(), start));
            }
            match &event {
                Event::Scalar(value, ..) if open.is_some() => {
                    secrets.words.push(value.to_string());
                }
                Event::MappingStart(..) => frames.push(Frame::Mapping { key: None }),
                Event::SequenceStart(..) => frames.push(Frame::Sequence),
                Event::MappingEnd | Event::SequenceEnd => {
                    frames.pop();
                }
                _ => {}
            }
            // A node ended: close the secret it was, and let its mapping take the next key.
            let ended = matches!(
                event,
                Event::Scalar(..) | Event::Alias(..) | Event::MappingEnd | Event::SequenceEnd
            );
            if ended {
                if let Some((depth, from)) = open
                    && depth == frames.len()
                {
                    secrets.spans.push(from..end.max(from));
                    open = None;
                }
                if let Some(Frame::Mapping { key }) = frames.last_mut() {
                    *key = None;
                }
            }
        }
        secrets.words.retain(|w| !w.is_empty());
        secrets
    }

    /// `line`, which starts at byte `at` of the document, with every secret part replaced.
    pub fn mask_line(&self, at: usize, line: &str) -> String {
        let end = at + line.len();
        let mut hidden: Vec<std::ops::Range<usize>> = self
            .spans
            .iter()
            .filter(|s| s.start < end && s.end > at)
            .map(|s| s.start.max(at) - at..s.end.min(end) - at)
            .collect();
        if hidden.is_empty() {
            return line.to_string();
        }
        hidden.sort_by_key(|r| r.start);
        let mut out = String::new();
        let mut shown_to = 0;
        for r in hidden {
            let from = floor_boundary(line, r.start.max(shown_to));
            let to = floor_boundary(line, r.end);
            if to <= shown_to {
                continue;
            }
            out.push_str(&line[shown_to..from]);
            // A line that is all secret keeps its indentation.
            if from == 0 {
                out.push_str(&line[..line.len() - line.trim_start().len()]);
            }
            out.push_str("<not shown>");
            shown_to = to;
        }
        out.push_str(&line[shown_to..]);
        out
    }

    /// `message` with every secret scalar it quotes replaced (bare too, when it is long enough
    /// not to be an ordinary word).
    pub fn mask_message(&self, message: &str) -> String {
        let mut message = message.to_string();
        let mut words: Vec<&String> = self.words.iter().collect();
        words.sort_by_key(|w| std::cmp::Reverse(w.len()));
        for word in words {
            for quoted in [
                format!("`{word}`"),
                format!("\"{word}\""),
                format!("'{word}'"),
            ] {
                message = message.replace(&quoted, "`<not shown>`");
            }
            if word.chars().count() >= 3 {
                message = message.replace(word.as_str(), "<not shown>");
            }
        }
        message
    }
}

fn floor_boundary(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
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

    fn secret_password(path: &[Step], _mapping: bool) -> bool {
        matches!(path, [Step::Key(a), Step::Key(b)] if a == "database" && b == "password")
    }

    fn masked(text: &str) -> String {
        let secrets = Secrets::find(text, secret_password);
        let mut at = 0;
        let mut out = String::new();
        for line in text.split_inclusive('\n') {
            out.push_str(&secrets.mask_line(at, line));
            at += line.len();
        }
        out
    }

    #[test]
    fn secret_fields_are_masked_in_every_style() {
        for text in [
            "database: {name: x, password: \"hunter2\"}\n",
            "database: {name: x, password: hunter2, role: y}\n",
            "database:\n  name: x\n  password: hunter2\n",
            "database:\n  password:\n    'hunter2'\n",
            "database:\n  password: {env: \"hunter2 pasted\"}\n",
            "database:\n  password:\n    env: hunter2\n",
            "database: {password: [hunter2]}\n",
            "database: {password: \"hunter2\n",
            "database:\n  password: \"hunter2\n  role: x\n",
        ] {
            let shown = masked(text);
            assert!(!shown.contains("hunter2"), "{text:?} -> {shown:?}");
            assert!(shown.contains("<not shown>"), "{text:?} -> {shown:?}");
        }
        // What is not secret stays.
        let shown = masked("database: {name: shop, password: {env: P}, role: shop_role}\n");
        assert!(
            shown.contains("name: shop") && shown.contains("role: shop_role"),
            "{shown}"
        );
        assert_eq!(masked("project: hunter2\n"), "project: hunter2\n");
    }

    #[test]
    fn a_message_quoting_a_secret_hides_it() {
        let secrets = Secrets::find("database: {password: \"x\"}\n", secret_password);
        let message = secrets.mask_message("invalid type: string \"x\", expected a map");
        assert_eq!(
            message,
            "invalid type: string `<not shown>`, expected a map"
        );
        let secrets = Secrets::find(
            "database: {password: {env: pasted value}}\n",
            secret_password,
        );
        let message = secrets.mask_message("`pasted value` is not a name");
        assert!(!message.contains("pasted"), "{message}");
    }

    #[test]
    fn a_tab_is_reported_where_it_is() {
        let err = parse::<Doc>("project: a\n\tservers: []\n").unwrap_err();
        assert_eq!(err.position, Position { line: 2, column: 1 }, "{err:?}");
    }
}
