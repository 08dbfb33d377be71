//! The settings of tandem's conf.d drop-ins (the derived tuning and `database.settings`)
//! checked against the running server's own `pg_settings` before anything is written: an
//! unknown name (with the nearest known one), a value of the wrong kind, a unit of another
//! kind, a number outside the setting's range, a value its enum does not have. PostgreSQL
//! refuses a whole file for one such line, and a reload keeps the old values silently, so the
//! outage would come at the next restart. The plan shows what is refused, and apply stops
//! before the drop-in is written. Where this check cannot know (a fresh server, a setting of
//! a library not loaded yet), the reload handler's `postgres -C` still asks PostgreSQL itself.

use super::Context;
use crate::config::identifier::shell_word;
use crate::model::facts::{Facts, PG};
use crate::model::playbook::Phase;

/// The SQL that reads what the check needs, for the settings named `names` (SQL literals).
pub fn query(names: &str) -> String {
    format!(
        "SELECT 'setting_def', name, vartype, coalesce(unit, ''), coalesce(min_val, ''), coalesce(max_val, ''), coalesce(array_to_string(enumvals, ','), '') FROM pg_settings WHERE name IN ({names});\n\
         SELECT 'setting_names', string_agg(name, ' ') FROM pg_settings WHERE EXISTS (SELECT 1 FROM unnest(ARRAY[{names}]::text[]) n WHERE n NOT IN (SELECT name FROM pg_settings));\n"
    )
}

/// One setting as `pg_settings` defines it.
#[derive(Debug, PartialEq)]
struct Definition {
    name: String,
    vartype: String,
    unit: String,
    min: Option<f64>,
    max: Option<f64>,
    enumvals: Vec<String>,
}

/// What the probe read: each named setting's definition, and every name the server knows
/// when one of ours is not among them (empty otherwise).
fn definitions(facts: &Facts) -> Option<(Vec<Definition>, Vec<String>)> {
    let pg = facts.get(PG);
    if !pg.ok() {
        return None;
    }
    let mut defs = Vec::new();
    let mut known = Vec::new();
    let mut answered = false;
    for line in pg.stdout.lines() {
        match line.split('|').collect::<Vec<_>>().as_slice() {
            ["setting_def", name, vartype, unit, min, max, enumvals] => {
                answered = true;
                defs.push(Definition {
                    name: name.to_string(),
                    vartype: vartype.to_string(),
                    unit: unit.to_string(),
                    min: min.parse().ok(),
                    max: max.parse().ok(),
                    enumvals: enumvals
                        .split(',')
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                        .collect(),
                })
            }
            ["setting_names", names] => {
                answered = true;
                known = names.split_whitespace().map(str::to_string).collect();
            }
            _ => {}
        }
    }
    // An older probe's answer (or a server that did not run the query) says nothing.
    answered.then_some((defs, known))
}

/// Each setting of the drop-ins the server would refuse, as a sentence.
pub fn refused(ctx: &Context) -> Vec<String> {
    let Some((defs, known)) = definitions(ctx.facts) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (_, written) in super::postgres_facts::conf_dropins(ctx.desired) {
        for (name, value) in written.iter().cloned() {
            // A dotted name is a library's (pg_stat_statements.max): unknown until it is
            // loaded, and PostgreSQL takes it as a placeholder meanwhile.
            if name.contains('.') {
                continue;
            }
            match defs.iter().find(|d| d.name == name) {
                Some(def) => {
                    if let Err(why) = check_value(def, &value) {
                        found.push(format!("{name} = '{value}': {why}"));
                    }
                }
                None if !known.is_empty() => {
                    let nearest = known
                        .iter()
                        .map(|k| (strsim::levenshtein(k, &name), k))
                        .min()
                        .filter(|(distance, _)| *distance <= 3)
                        .map(|(_, k)| format!("; did you mean `{k}`?"))
                        .unwrap_or_default();
                    found.push(format!(
                        "`{name}` is not a setting of this PostgreSQL{nearest}"
                    ));
                }
                None => {}
            }
        }
    }
    found
}

/// Plans the refusal: a change in front of the drop-ins that fails with the reasons, so
/// apply stops before writing a file PostgreSQL would refuse.
pub fn plan(ctx: &mut Context) {
    let problems = refused(ctx);
    if problems.is_empty() {
        return;
    }
    let what = problems.join("; ");
    let message =
        format!("PostgreSQL refuses these settings (database.settings in tandem.yml): {what}");
    let script = format!("echo {} >&2\nexit 1\n", shell_word(&message));
    let at = ctx
        .changes
        .iter()
        .position(|c| c.file.as_deref().is_some_and(|f| f.contains("/conf.d/")))
        .unwrap_or(ctx.changes.len());
    let mut change = crate::model::plan::Change::new(format!("! {message}"), None, script);
    change.role = Phase::Db;
    change.step = "Settings checked against the server's pg_settings".into();
    ctx.changes.insert(at, change);
}

/// Why `value` is not a value of `def`, as PostgreSQL would parse it (leniently where unsure:
/// PostgreSQL's own check at the reload is exact).
fn check_value(def: &Definition, value: &str) -> Result<(), String> {
    let v = value.trim().to_ascii_lowercase();
    const BOOL: &[&str] = &["on", "off", "true", "false", "yes", "no", "1", "0"];
    let is_bool = |v: &str| {
        BOOL.contains(&v)
            || (v.len() >= 2
                && ["true", "false", "yes", "no", "off"]
                    .iter()
                    .any(|b| b.starts_with(v)))
            || matches!(v, "t" | "f" | "y" | "n")
    };
    match def.vartype.as_str() {
        "bool" if !is_bool(&v) => Err("not a boolean (on or off)".into()),
        "enum" => {
            // Values pg_settings hides (bool words, wal_level's old names) are accepted too.
            let hidden = ["archive", "hot_standby"];
            if def.enumvals.iter().any(|e| e.eq_ignore_ascii_case(&v))
                || is_bool(&v)
                || hidden.contains(&v.as_str())
            {
                Ok(())
            } else {
                Err(format!("not one of {}", def.enumvals.join(", ")))
            }
        }
        "integer" | "real" => {
            let number = in_base_unit(&v, &def.unit)?;
            if def.vartype == "integer" && number.abs() > f64::from(i32::MAX) {
                return Err("outside the range of an integer setting".into());
            }
            match (def.min, def.max) {
                (Some(min), Some(max)) if number < min || number > max => Err(format!(
                    "outside its range, {}-{}{}",
                    min,
                    max,
                    if def.unit.is_empty() {
                        String::new()
                    } else {
                        format!(" (in units of {})", def.unit)
                    }
                )),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// A number with an optional unit (`64MB`, `1.5s`, `300`), in the setting's own unit
/// (`8kB`, `MB`, `ms`, `s`, or none).
fn in_base_unit(value: &str, unit: &str) -> Result<f64, String> {
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| "not a number".to_string())?;
    let suffix = suffix.trim();
    // Factors to bytes or milliseconds, by lowercase unit.
    let memory = |u: &str| match u {
        "b" => Some(1.0),
        "kb" => Some(1024.0),
        "mb" => Some(1024.0 * 1024.0),
        "gb" => Some(1024.0 * 1024.0 * 1024.0),
        "tb" => Some(1024.0 * 1024.0 * 1024.0 * 1024.0),
        _ => None,
    };
    let time = |u: &str| match u {
        "us" => Some(0.001),
        "ms" => Some(1.0),
        "s" => Some(1000.0),
        "min" => Some(60_000.0),
        "h" => Some(3_600_000.0),
        "d" => Some(86_400_000.0),
        _ => None,
    };
    if suffix.is_empty() {
        return Ok(number);
    }
    // The setting's unit, e.g. `8kB` = 8 x 1024 bytes.
    let base = unit.trim().to_ascii_lowercase();
    let (count, base_unit) = match base.find(|c: char| !c.is_ascii_digit()) {
        Some(0) | None => (1.0, base.as_str()),
        Some(i) => (base[..i].parse().unwrap_or(1.0), &base[i..]),
    };
    if let (Some(per), Some(given)) = (memory(base_unit), memory(suffix)) {
        return Ok(number * given / (per * count));
    }
    if let (Some(per), Some(given)) = (time(base_unit), time(suffix)) {
        return Ok(number * given / (per * count));
    }
    Err(if base.is_empty() {
        format!("`{suffix}`: this setting takes no unit")
    } else {
        format!("`{suffix}` is not a unit of this setting (its unit is {unit})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(
        name: &str,
        vartype: &str,
        unit: &str,
        min: f64,
        max: f64,
        enumvals: &str,
    ) -> Definition {
        Definition {
            name: name.into(),
            vartype: vartype.into(),
            unit: unit.into(),
            min: Some(min),
            max: Some(max),
            enumvals: enumvals
                .split(',')
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    #[test]
    fn values_are_checked_as_postgresql_would() {
        // From PostgreSQL 15's pg_settings.
        let shared_buffers = def("shared_buffers", "integer", "8kB", 16.0, 1073741823.0, "");
        let work_mem = def("work_mem", "integer", "kB", 64.0, 2147483647.0, "");
        let max_connections = def("max_connections", "integer", "", 1.0, 262143.0, "");
        let timeout = def("checkpoint_timeout", "integer", "s", 30.0, 86400.0, "");
        let cost = def("random_page_cost", "real", "", 0.0, 1.79769e308, "");
        let wal_level = def("wal_level", "enum", "", 0.0, 0.0, "minimal,replica,logical");
        let jit = def("jit", "bool", "", 0.0, 0.0, "");
        for (d, good) in [
            (&shared_buffers, "1GB"),
            (&shared_buffers, "16384"),
            (&work_mem, "8MB"),
            (&work_mem, "4096kB"),
            (&max_connections, "200"),
            (&timeout, "15min"),
            (&timeout, "900"),
            (&cost, "1.1"),
            (&wal_level, "replica"),
            (&wal_level, "Logical"),
            (&jit, "off"),
            (&jit, "true"),
        ] {
            assert_eq!(check_value(d, good), Ok(()), "{} = {good}", d.name);
        }
        for (d, bad, says) in [
            (&shared_buffers, "17179869184TB", "outside"),
            (&work_mem, "a b", "not a number"),
            (&max_connections, "4294967295", "outside"),
            (&max_connections, "0", "outside its range, 1-262143"),
            (&work_mem, "8s", "not a unit of this setting"),
            (&max_connections, "100MB", "takes no unit"),
            (&wal_level, "bogus", "not one of minimal, replica, logical"),
            (&jit, "maybe", "not a boolean"),
            (&timeout, "10", "outside"),
        ] {
            let why = check_value(d, bad).unwrap_err();
            assert!(why.contains(says), "{} = {bad}: {why}", d.name);
        }
    }

    #[test]
    fn the_probe_answer_is_read_and_an_older_one_says_nothing() {
        let facts = crate::resource::table::pg_facts;
        let (defs, known) = definitions(&facts(
            "setting_def|work_mem|integer|kB|64|2147483647|\nsetting_names|work_mem shared_buffers\n",
        ))
        .unwrap();
        assert_eq!(defs.len(), 1);
        assert_eq!(known, ["work_mem", "shared_buffers"]);
        assert!(definitions(&facts("role|x|f|t|f|f|\n")).is_none());
    }
}
