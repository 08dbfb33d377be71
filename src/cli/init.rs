//! `tandem init`: the commented starter tandem.yml, filled in from the Django project it is
//! written for (its manage.py, settings and wsgi modules, requirements file), saying what it
//! guessed.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

pub const STARTER: &str = include_str!("../../examples/starter.yml");

/// Words a settings package is often called that make a poor project name (the project is
/// then named after the directory).
const GENERIC_PACKAGES: [&str; 7] = [
    "config", "settings", "core", "app", "project", "src", "conf",
];

/// Requirements files tried, in order, when there is no requirements.txt.
const REQUIREMENTS: [&str; 5] = [
    "requirements.txt",
    "requirements/production.txt",
    "requirements/prod.txt",
    "requirements/base.txt",
    "requirements.in",
];

/// The starter for a config written in `dir`, and one line per thing it read from the Django
/// project there (or why it found none).
pub fn starter_for(dir: &Path) -> (String, Vec<String>) {
    let mut said = Vec::new();
    let Some(source) = find_manage_py(dir) else {
        said.push(format!(
            "no manage.py in {} or a directory below: set `django.source` and the modules by hand",
            dir.display()
        ));
        return (STARTER.to_string(), said);
    };
    let root = dir.join(&source);
    let source_text = if source.as_os_str().is_empty() {
        ".".to_string()
    } else {
        source.display().to_string()
    };
    let mut text = STARTER.replace(
        "  source: .                        # the directory holding manage.py",
        &format!("  source: {source_text:<24} # the directory holding manage.py"),
    );
    let manage = std::fs::read_to_string(root.join("manage.py")).unwrap_or_default();
    let Some(settings) = settings_module(&manage) else {
        said.push(format!(
            "{source_text}/manage.py names no DJANGO_SETTINGS_MODULE: set django.settings_module by hand"
        ));
        return (text, said);
    };
    let package = settings.split('.').next().unwrap_or(&settings).to_string();
    let wsgi = wsgi_module(&root, &settings);
    let project = project_name(&package, &root, dir);
    text = text
        .replace("project: myproject", &format!("project: {project}"))
        .replace("  name: myproject", &format!("  name: {project}"))
        .replace("  role: myproject", &format!("  role: {project}"))
        .replace("celery -A myproject", &format!("celery -A {package}"))
        .replace(
            "  settings_module: myproject.settings",
            &format!("  settings_module: {settings}"),
        );
    match &wsgi {
        Some(wsgi) => {
            text = text.replace(
                "  wsgi_module: myproject.wsgi",
                &format!("  wsgi_module: {wsgi}"),
            )
        }
        None => said.push(format!(
            "no wsgi.py with get_wsgi_application under {source_text}: set django.wsgi_module by hand"
        )),
    }
    said.push(format!(
        "read {source_text}/manage.py: settings {settings}, wsgi {}, project `{project}`",
        wsgi.as_deref().unwrap_or("?")
    ));
    match REQUIREMENTS.iter().find(|r| root.join(r).is_file()) {
        Some(file) => {
            text = text.replace(
                "  requirements: requirements.txt   # relative to `source`",
                &format!("  requirements: {file:<18} # relative to `source`"),
            );
            let (names, _) = crate::config::requirements::names(&root.join(file));
            let tenants = ["django-tenants", "django-tenant-schemas"]
                .iter()
                .find(|t| names.contains(**t));
            if let Some(tenants) = tenants {
                text = text.replace(
                    "  migrate: migrate                 # or migrate_schemas",
                    "  migrate: migrate_schemas         # or migrate",
                );
                said.push(format!(
                    "{file} installs {tenants}: multi-tenant (migrate_schemas); add your wildcard \
                     \"*.example.com\" to `domains` (its certificate needs DNS-01: tls.acme.dns)"
                ));
            }
            if names.contains("celery") {
                said.push(format!(
                    "{file} installs celery: see the commented `processes:` and `broker:` at the end"
                ));
            }
        }
        None => said.push(format!(
            "no requirements file in {source_text} (tried {}): every release installs one",
            REQUIREMENTS.join(", ")
        )),
    }
    (text, said)
}

/// Where manage.py is, relative to `dir`: `dir` itself or one directory below (when exactly one
/// has it).
fn find_manage_py(dir: &Path) -> Option<PathBuf> {
    if dir.join("manage.py").is_file() {
        return Some(PathBuf::new());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("manage.py").is_file())
        .map(|e| PathBuf::from(e.file_name()))
        .collect();
    (found.len() == 1).then(|| found.remove(0))
}

/// The module manage.py sets DJANGO_SETTINGS_MODULE to (`os.environ.setdefault(
/// "DJANGO_SETTINGS_MODULE", "shop.settings")`), when it is a module path.
fn settings_module(manage: &str) -> Option<String> {
    let line = manage
        .lines()
        .find(|l| l.contains("DJANGO_SETTINGS_MODULE") && !l.trim_start().starts_with('#'))?;
    // The quoted strings of the line, in order: the one after the variable's name.
    let mut strings = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find(['"', '\'']) {
        let quote = rest[open..].chars().next()?;
        let after = &rest[open + 1..];
        let close = after.find(quote)?;
        strings.push(&after[..close]);
        rest = &after[close + 1..];
    }
    let name = strings
        .iter()
        .position(|s| *s == "DJANGO_SETTINGS_MODULE")?;
    let module = strings.get(name + 1)?;
    crate::config::identifier::is_python_module(module).then(|| module.to_string())
}

/// The WSGI module: `<package>.wsgi` beside the settings (for `config.settings.production`,
/// `config.wsgi`), or else the one wsgi.py below `root` that calls get_wsgi_application.
fn wsgi_module(root: &Path, settings: &str) -> Option<String> {
    let parts: Vec<&str> = settings.split('.').collect();
    for depth in (1..parts.len()).rev() {
        let module = format!("{}.wsgi", parts[..depth].join("."));
        if crate::config::django::python_module_file(root, &module).is_some() {
            return Some(module);
        }
    }
    let found: Vec<String> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("wsgi.py"))
                .is_ok_and(|t| t.contains("get_wsgi_application"))
        })
        .map(|e| format!("{}.wsgi", e.file_name().to_string_lossy()))
        .collect();
    match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// A safe project name: the settings package, or (when that is a generic word like `config`)
/// the project's directory; lowercase letters, digits and `_`, starting with a letter.
fn project_name(package: &str, root: &Path, dir: &Path) -> String {
    let directory = |p: &Path| {
        std::fs::canonicalize(p)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    };
    let base = if GENERIC_PACKAGES.contains(&package) {
        directory(root)
            .or_else(|| directory(dir))
            .unwrap_or_else(|| package.to_string())
    } else {
        package.to_string()
    };
    let mut name: String = base
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "app_");
    }
    name.truncate(31);
    if crate::config::identifier::is_safe_name(&name)
        && !crate::config::identifier::SYSTEM_ACCOUNTS.contains(&name.as_str())
    {
        name
    } else {
        "myproject".to_string()
    }
}

/// Writes the starter config to `path`, or to `path/tandem.yml` when `path` is a directory
/// (`tandem init mysite/`); never overwrites. Returns the file written and what it read from
/// the Django project there.
pub fn write_starter(path: &Path) -> anyhow::Result<(PathBuf, Vec<String>)> {
    let path = if path.is_dir() {
        path.join("tandem.yml")
    } else {
        path.to_path_buf()
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (text, said) = starter_for(&dir);
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!(
                "{} already exists; tandem init never overwrites a config",
                path.display()
            )
        }
        Err(err) => return Err(err).with_context(|| format!("creating {}", path.display())),
    };
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((path, said))
}
