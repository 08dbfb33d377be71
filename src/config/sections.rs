//! Every section's first mistake in one pass. serde stops at the first error in a document, so
//! a file with a mistake in `django:` and another in `ssh:` would cost a round trip each. When
//! the whole file does not parse, each top-level section is parsed again on its own (the whole
//! text, every other key ignored, so line numbers stay true) and its first error is kept.

use serde::Deserialize;

use super::raw;
use super::yaml::{self, ParseError, Spanned};

/// A document read for one top-level key only; any other key is skipped unchecked.
macro_rules! section_probes {
    ($($probe:ident: $field:ident as $ty:ty),* $(,)?) => {
        $(
            #[derive(Deserialize)]
            struct $probe {
                #[allow(dead_code)]
                $field: Option<$ty>,
            }
        )*

        fn each_section(text: &str) -> Vec<ParseError> {
            let mut found = Vec::new();
            $(
                if let Err(err) = yaml::parse::<$probe>(text) {
                    found.push(err);
                }
            )*
            found
        }
    };
}

section_probes! {
    Project: project as Spanned<String>,
    Servers: servers as Spanned<Vec<raw::Server>>,
    Domains: domains as Spanned<Vec<Spanned<String>>>,
    Database: database as raw::Database,
    Django: django as raw::Django,
    Ssh: ssh as raw::Ssh,
    Tls: tls as Spanned<super::tls::raw::Tls>,
    Backup: backup as Spanned<super::backup::raw::Backup>,
    Processes: processes as Vec<super::processes::raw::Process>,
    Broker: broker as Spanned<super::processes::raw::Broker>,
    Acknowledge: acknowledge as Vec<raw::Acknowledgement>,
}

/// `first` (the whole file's error) and the first error of every other section, each once, in
/// the order of the file.
pub(super) fn all_errors(text: &str, first: ParseError) -> Vec<ParseError> {
    let mut errors = vec![first];
    for err in each_section(text) {
        if !errors
            .iter()
            .any(|e| e.position == err.position && e.message == err.message)
        {
            errors.push(err);
        }
    }
    errors.sort_by_key(|e| (e.position.line, e.position.column));
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_MISTAKES: &str = "project: shop
servers: []
domains: [example.com]
database:
  name: shop
  role: shop
  password: {env: X}
django:
  source: .
  wsgi_module: shop.wsgi
  settings_module: shop.settings
  workers: lots
ssh:
  port: 99999
tls:
  mode: sometimes
";

    #[test]
    fn a_mistake_in_each_of_three_sections_is_reported_three_times_in_file_order() {
        let first = yaml::parse::<raw::Config>(THREE_MISTAKES).err().unwrap();
        let lines: Vec<u64> = all_errors(THREE_MISTAKES, first)
            .iter()
            .map(|e| e.position.line)
            .collect();
        assert_eq!(lines, vec![12, 14, 16]);
    }

    #[test]
    fn a_syntax_error_is_reported_once() {
        let text = "project: shop\nservers: [\n";
        let first = yaml::parse::<raw::Config>(text).err().unwrap();
        assert_eq!(all_errors(text, first).len(), 1);
    }
}
