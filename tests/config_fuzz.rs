//! A property test of the config loader on hostile and broken input: random insertions,
//! replaced and cut lines, and passwords written where only a source belongs. Whatever the
//! input: no panic, no hang, an error located in the file, and no secret echoed.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;

mod support;

use support::config::good_config;

/// A directory with the Django project the config names (`app/manage.py`), so that a good
/// config loads without error.
fn project_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        support::config::django_project(&dir.path().join("app"));
        dir
    })
    .path()
}

#[test]
fn the_unmutated_config_loads() {
    assert_eq!(load(good_config()), Ok(None));
}

/// What the loader printed for `text`, or `None` when it accepted it. Runs on its own thread
/// so that a hang fails the case instead of the whole suite.
fn load(text: String) -> Result<Option<String>, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(|| {
            tandem::config::parse(&project_dir().join("tandem.yml"), &text)
                .err()
                .map(|e| e.to_string())
        });
        let _ = tx.send(result.map_err(|_| "panicked".to_string()));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .map_err(|_| "no answer within 20 s (a hang)".to_string())?
}

/// A mutation of the good config.
#[derive(Debug, Clone)]
enum Mutation {
    Insert {
        at: usize,
        text: String,
    },
    ReplaceLine {
        line: usize,
        text: String,
    },
    Cut {
        at: usize,
    },
    /// A secret pasted where only its source belongs, in one of `SECRET_PLACES`.
    InlinePassword {
        secret: String,
        quoted: bool,
        place: usize,
    },
}

/// Where a pasted secret goes: `VALUE` is the value as written. Block and flow style, the value
/// itself and the value written as a variable's name.
const SECRET_PLACES: &[&str] = &[
    "  password: VALUE",
    "  password: {env: VALUE pasted}",
    "  password:\n    VALUE",
    "  password: {file: x, env: VALUE pasted}",
    "  password: {env: X}\nbroker: {password: VALUE}",
    "  password: {env: X}\nbroker: {password: {env: VALUE pasted}}",
    "  password: {env: X}\nbackup: {encryption_key: VALUE}",
    "  password: {env: X}\nbackup:\n  encryption_key: {env: VALUE pasted}",
    "  pasword: VALUE",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let noise = prop_oneof![
        ".{0,40}",
        "[ \t\n:\\-\\[\\]{}'\"#&*!|>%@`,?]{0,12}",
        "[a-z_]{1,12}: [^\n]{0,30}\n",
    ];
    prop_oneof![
        (any::<usize>(), noise.clone()).prop_map(|(at, text)| Mutation::Insert { at, text }),
        (any::<usize>(), noise).prop_map(|(line, text)| Mutation::ReplaceLine { line, text }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
        (
            "SeCrEt[A-Za-z0-9]{6,20}",
            any::<bool>(),
            0..SECRET_PLACES.len()
        )
            .prop_map(|(secret, quoted, place)| Mutation::InlinePassword {
                secret,
                quoted,
                place
            }),
    ]
}

fn apply(m: &Mutation) -> String {
    let good = good_config();
    let boundary = |at: usize| {
        let mut at = at % (good.len() + 1);
        while !good.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    match m {
        Mutation::Insert { at, text } => {
            let at = boundary(*at);
            format!("{}{text}{}", &good[..at], &good[at..])
        }
        Mutation::ReplaceLine { line, text } => {
            let lines: Vec<&str> = good.lines().collect();
            let n = line % lines.len();
            lines
                .iter()
                .enumerate()
                .map(|(i, l)| if i == n { text.as_str() } else { l })
                .collect::<Vec<_>>()
                .join("\n")
        }
        Mutation::Cut { at } => good[..boundary(*at)].to_string(),
        Mutation::InlinePassword {
            secret,
            quoted,
            place,
        } => {
            let value = if *quoted {
                format!("\"{secret}\"")
            } else {
                secret.clone()
            };
            good.replace(
                "  password: {env: TANDEM_DB_PASSWORD}",
                &SECRET_PLACES[*place].replace("VALUE", &value),
            )
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_loader_never_panics_hangs_hides_the_place_or_echoes_a_secret(m in mutation()) {
        let text = apply(&m);
        let shown = load(text.clone());
        prop_assert!(shown.is_ok(), "{:?} on {:?}", shown, text);
        if let Some(error) = shown.unwrap() {
            prop_assert!(error.contains("tandem.yml"), "no file named: {error}");
            prop_assert!(error.contains("error:"), "{error}");
            prop_assert!(error.len() < 20_000, "{} bytes of error", error.len());
            if let Mutation::InlinePassword { secret, .. } = &m {
                prop_assert!(!error.contains(secret.as_str()), "secret echoed: {error}");
            }
        } else if let Mutation::InlinePassword { .. } = &m {
            prop_assert!(false, "an inline password was accepted");
        }
    }
}
