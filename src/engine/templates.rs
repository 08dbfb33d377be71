//! `Templates`: renders tandem's Tera templates and templated playbook fields with `Vars`.
//! Output is plain text (no HTML escaping); quoting is explicit through filters:
//! `sql_ident`, `sql_literal`, `shell` and `env_value`.

use std::collections::HashMap;

use anyhow::Context as _;
use tera::{Context, Tera, Value};

use crate::config::identifier;
use crate::engine::assets::Assets;
use crate::engine::vars::Vars;

pub struct Templates {
    assets: Assets,
    tera: Tera,
}

impl Templates {
    pub fn new(assets: Assets) -> Self {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        tera.register_filter("sql_ident", string_filter(identifier::sql_ident));
        tera.register_filter("sql_literal", string_filter(identifier::sql_literal));
        tera.register_filter("shell", string_filter(identifier::shell_word));
        tera.register_filter("env_value", string_filter(env_value));
        tera.register_filter("redis_value", string_filter(redis_value));
        tera.register_function("nginx_reload", |_: &HashMap<String, Value>| {
            Ok(Value::String(crate::model::platform::nginx_reload(
                "reload",
            )))
        });
        Templates { assets, tera }
    }

    pub fn assets(&self) -> &Assets {
        &self.assets
    }

    /// Renders `templates/<name>` for one of several things of a kind (a process): `vars` plus
    /// `item` as the variable `key`.
    pub fn render_item(
        &mut self,
        name: &str,
        vars: &Vars,
        key: &str,
        item: &impl serde::Serialize,
    ) -> anyhow::Result<String> {
        self.load(name)?;
        let mut context = Context::from_serialize(vars).context("building template variables")?;
        context.insert(key, item);
        self.tera
            .render(name, &context)
            .map_err(|e| anyhow::anyhow!("{}", chain(&e)))
            .with_context(|| format!("rendering template {name}"))
    }

    fn load(&mut self, name: &str) -> anyhow::Result<()> {
        if !self.tera.get_template_names().any(|n| n == name) {
            let (origin, text) = self.assets.template(name)?;
            self.tera
                .add_raw_template(name, &text)
                .map_err(|e| anyhow::anyhow!("{}", chain(&e)))
                .with_context(|| format!("parsing template {origin}"))?;
        }
        Ok(())
    }

    /// Renders `templates/<name>` (from the override directory or the binary).
    pub fn render(&mut self, name: &str, vars: &Vars) -> anyhow::Result<String> {
        self.load(name)?;
        let context = Context::from_serialize(vars).context("building template variables")?;
        self.tera
            .render(name, &context)
            .map_err(|e| anyhow::anyhow!("{}", chain(&e)))
            .with_context(|| format!("rendering template {name}"))
    }

    /// Renders a playbook field such as `/etc/nginx/sites-available/{{ project }}`.
    pub fn render_field(&mut self, text: &str, vars: &Vars) -> anyhow::Result<String> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_string());
        }
        let context = Context::from_serialize(vars).context("building template variables")?;
        self.tera
            .render_str(text, &context)
            .map_err(|e| anyhow::anyhow!("{}", chain(&e)))
            .with_context(|| format!("rendering `{text}`"))
    }
}

/// Tera's errors keep the useful part in their sources; show the whole chain on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

type Filter = Box<dyn Fn(&Value, &HashMap<String, Value>) -> tera::Result<Value> + Send + Sync>;

fn string_filter(f: fn(&str) -> String) -> Filter {
    Box::new(move |value, _args| match value {
        Value::String(s) => Ok(Value::String(f(s))),
        Value::Number(n) => Ok(Value::String(f(&n.to_string()))),
        other => Err(tera::Error::msg(format!("expected a string, got {other}"))),
    })
}

/// `value` as one argument of a redis.conf directive: double-quoted, `\` and `"` escaped.
pub fn redis_value(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A value for a file read both by systemd (`EnvironmentFile=`) and by `sh`: double-quoted,
/// with `\`, `"`, `$` and `` ` `` escaped so neither expands anything.
pub fn env_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Inverse of `env_value`: `None` for a value it did not write.
pub fn unquote_env(value: &str) -> Option<String> {
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_are_quoted() {
        assert_eq!(env_value("pl4in"), "\"pl4in\"");
        assert_eq!(env_value("a\"b$c`d\\e"), "\"a\\\"b\\$c\\`d\\\\e\"");
    }

    #[test]
    fn env_values_read_back() {
        for value in ["pl4in", "a\"b$c`d\\e", ""] {
            assert_eq!(unquote_env(&env_value(value)).as_deref(), Some(value));
        }
        assert_eq!(unquote_env("bare"), None);
    }
}
