//! `Mode`: a file's permission bits as a number, shown the way users write them (`0644`) and
//! compared the way `stat -c %a` prints them (`644`).

use std::fmt;

use serde::{Serialize, Serializer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Mode {
    /// An octal mode as playbooks write it: four digits 0-7 (`"0644"`).
    pub fn parse(text: &str) -> Option<Mode> {
        if text.len() != 4 || !text.chars().all(|c| ('0'..='7').contains(&c)) {
            return None;
        }
        u32::from_str_radix(text, 8).ok().map(Mode)
    }

    /// What `stat -c %a` prints for it: octal without leading zeros.
    pub fn stat_form(self) -> String {
        format!("{:o}", self.0)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_show_and_compare() {
        let m = Mode::parse("0644").unwrap();
        assert_eq!(
            (m.0, m.to_string(), m.stat_form()),
            (0o644, "0644".into(), "644".into())
        );
        assert_eq!(Mode::parse("0000").unwrap().stat_form(), "0");
        assert_eq!(Mode::parse("4755").unwrap().stat_form(), "4755");
        for bad in ["644", "0648", "06444", "rw-r", ""] {
            assert!(Mode::parse(bad).is_none(), "{bad}");
        }
    }
}
