//! `django:` in tandem.yml: the project, its modules, gunicorn, and the app's env file.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrateCommand {
    /// Plain Django.
    Migrate,
    /// django-tenants / django-tenant-schemas: `migrate_schemas --shared`, then the tenants.
    MigrateSchemas,
}

#[derive(Clone, Debug, Serialize)]
pub struct Django {
    pub source: PathBuf,
    pub wsgi_module: String,
    pub settings_module: String,
    pub requirements: String,
    pub workers: u16,
    pub static_url: String,
    pub media_url: String,
    pub migrate: MigrateCommand,
    /// Settings for the app's env file, shown in plans and diffs.
    pub env: BTreeMap<String, String>,
    /// Secrets for the app's env file: where each value comes from, never the value.
    pub secret_env: BTreeMap<String, PasswordSource>,
    /// When a release is live on a server (`django.health`).
    pub health: Health,
}

/// A release is live on an app server when Django answers through that server's nginx, for
/// the site's first domain, at `path` with an accepted status within `timeout_seconds`;
/// otherwise the server goes back to the release it ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    pub path: String,
    /// The status that counts as healthy; `None`: any below 500 (Django answered; a 404 or a
    /// login redirect is Django working, a 500 or nginx's 502 is not).
    pub status: Option<u16>,
    pub timeout_seconds: u16,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            path: "/".into(),
            status: None,
            timeout_seconds: DEFAULT_HEALTH_SECONDS,
        }
    }
}

/// How long a release may take to answer its health check, by default.
const DEFAULT_HEALTH_SECONDS: u16 = 30;

/// `django.health` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub path: Option<Spanned<String>>,
    pub status: Option<Spanned<u16>>,
    pub timeout: Option<Spanned<u16>>,
}

/// The longest `django.env` value, in bytes. Every Django process, unit and root script gets
/// the env file in its environment; Linux refuses to start a program with a single variable
/// over 128 KiB ("Argument list too long"), and all of them together must share 2 MiB with
/// the arguments.
pub const ENV_VALUE_LIMIT: usize = 32 * 1024;

/// The most `django.env` may hold in all, in bytes (names and values).
pub const ENV_TOTAL_LIMIT: usize = 256 * 1024;

/// The env file variables tandem writes itself; `django.env` and `django.secret_env` cannot
/// set them.
pub const TANDEM_ENV: &[&str] = &[
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_STATIC_ROOT",
    "DJANGO_MEDIA_ROOT",
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_NAME",
    "DATABASE_USER",
    "DATABASE_PASSWORD",
    "DATABASE_URL",
    "CSRF_TRUSTED_ORIGINS",
    "DJANGO_HTTPS",
    "DJANGO_HSTS_SECONDS",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "PGTARGETSESSIONATTRS",
    "PGCONNECT_TIMEOUT",
];

impl Django {
    pub fn is_multi_tenant(&self) -> bool {
        self.migrate == MigrateCommand::MigrateSchemas
    }
}

/// The file that Python module `module` (dotted) is in below `source`, if there is one.
pub fn python_module_file(source: &Path, module: &str) -> Option<PathBuf> {
    let path = source.join(module.replace('.', "/"));
    [path.with_extension("py"), path.join("__init__.py")]
        .into_iter()
        .find(|p| p.is_file())
}

impl Validator<'_> {
    /// What the release's `pip install -r` must bring for tandem's units to start: gunicorn,
    /// a PostgreSQL driver, Celery when a process runs it (and, multi-tenant, the package that
    /// gives tasks their tenant).
    pub(super) fn requirements(
        &mut self,
        at: &Spanned<String>,
        django: &Django,
        processes: &[crate::config::Process],
    ) {
        let path = django.source.join(&django.requirements);
        if !path.is_file() {
            return; // said already
        }
        let (names, unread) = super::requirements::names(&path);
        let file = &django.requirements;
        for include in unread {
            self.error(
                at,
                "django.requirements",
                format!("{file} includes {include}, which cannot be read"),
                "fix the `-r` line: includes are relative to the file that names them",
            );
        }
        let has = |wanted: &[&str]| wanted.iter().any(|w| names.contains(*w));
        if !has(&["gunicorn"]) {
            self.error(
                at,
                "django.requirements",
                format!(
                    "{file} does not install gunicorn, which serves Django on every app server"
                ),
                &format!("add a line `gunicorn` to {file}"),
            );
        }
        if !has(&super::requirements::POSTGRES_DRIVERS) {
            self.error(
                at,
                "django.requirements",
                format!("{file} installs no PostgreSQL driver (psycopg or psycopg2): Django cannot reach the database"),
                &format!("add a line `psycopg[binary]` to {file}"),
            );
        }
        let runs_celery = processes.iter().find(|p| {
            p.command
                .iter()
                .any(|w| w == "celery" || w.ends_with("/celery"))
        });
        if let Some(process) = runs_celery {
            if !has(&["celery"]) {
                self.error(
                    at,
                    "django.requirements",
                    format!(
                        "process `{}` runs celery, which {file} does not install",
                        process.name
                    ),
                    &format!("add a line `celery[redis]` to {file}"),
                );
            } else if django.is_multi_tenant() && !has(&["tenant-schemas-celery"]) {
                self.warning(
                    at,
                    "django.requirements",
                    format!(
                        "process `{}` runs celery for a multi-tenant project, and {file} does not install tenant-schemas-celery: tasks run in the public schema",
                        process.name
                    ),
                    &format!(
                        "add `tenant-schemas-celery` to {file} and make your Celery app a TenantAwareCeleryApp"
                    ),
                );
            }
        }
    }

    pub(super) fn django(
        &mut self,
        raw: raw::Django,
        domains: &[String],
        raw_domains: &Spanned<Vec<Spanned<String>>>,
    ) -> Option<Django> {
        for (value, field) in [
            (&raw.wsgi_module, "django.wsgi_module"),
            (&raw.settings_module, "django.settings_module"),
        ] {
            if !identifier::is_python_module(&value.value) {
                self.error(
                    value,
                    field,
                    format!("`{}` is not a Python module path", value.value),
                    "write a dotted module path, e.g. `timesheet.wsgi`",
                );
            }
        }
        let base = self.path.parent().unwrap_or(Path::new("."));
        let source = base.join(&raw.source.value);
        let has_project = source.join("manage.py").is_file();
        if !has_project {
            self.error(
                &raw.source,
                "django.source",
                format!("{} has no manage.py", source.display()),
                "point `source` at your Django project's directory (relative to this file)",
            );
        }
        let requirements = &raw.requirements;
        if requirements.value.starts_with('/') || requirements.value.split('/').any(|p| p == "..") {
            self.error(
                requirements,
                "django.requirements",
                format!("`{}` is outside the project", requirements.value),
                "write a path relative to `django.source`, e.g. requirements.txt",
            );
        } else if has_project && !source.join(&requirements.value).is_file() {
            self.error(
                requirements,
                "django.requirements",
                format!(
                    "{} does not exist",
                    source.join(&requirements.value).display()
                ),
                "name the pip requirements file, relative to `django.source` (every release \
                 installs it; `pip freeze > requirements.txt` writes one)",
            );
        }
        // Only once the source is a Django project: otherwise that error says it all.
        for (value, field) in [
            (&raw.wsgi_module, "django.wsgi_module"),
            (&raw.settings_module, "django.settings_module"),
        ] {
            if has_project
                && identifier::is_python_module(&value.value)
                && python_module_file(&source, &value.value).is_none()
            {
                let path = value.value.replace('.', "/");
                self.error(
                    value,
                    field,
                    format!(
                        "`{}` names no file in {}: neither {path}.py nor {path}/__init__.py",
                        value.value,
                        source.display()
                    ),
                    "write the module's dotted path from `django.source`, as manage.py's \
                     DJANGO_SETTINGS_MODULE does, e.g. `mysite.settings`",
                );
            }
        }
        if raw.workers.value == 0 || raw.workers.value > 64 {
            self.error(
                &raw.workers,
                "django.workers",
                format!("{} gunicorn workers", raw.workers.value),
                "use 2 x cores + 1, between 1 and 64",
            );
        }
        for (value, field) in [
            (&raw.static_url, "django.static_url"),
            (&raw.media_url, "django.media_url"),
        ] {
            let ok = value.value.starts_with('/')
                && value.value.ends_with('/')
                && value.value.len() > 1
                && value
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
            if !ok || value.value.contains("//") || value.value.split('/').any(|p| p == "..") {
                self.error(
                    value,
                    field,
                    format!("`{}` is not a URL path prefix", value.value),
                    "write a path that starts and ends with `/`, without `..` or `//`, e.g. /static/",
                );
            }
        }
        let (static_url, media_url) = (&raw.static_url.value, &raw.media_url.value);
        if static_url.starts_with(media_url.as_str()) || media_url.starts_with(static_url.as_str())
        {
            // Point at whichever of the two the file sets (a default has no line).
            let (at, field) = if Position::of(&raw.media_url).line > 0 {
                (&raw.media_url, "django.media_url")
            } else {
                (&raw.static_url, "django.static_url")
            };
            self.error(
                at,
                field,
                format!("media_url `{media_url}` overlaps static_url `{static_url}`"),
                "give uploads and static files their own prefixes, e.g. /static/ and /media/ \
                 (nginx serves each from its own directory)",
            );
        }
        if raw.migrate == MigrateCommand::MigrateSchemas
            && !domains.iter().any(|d| d.starts_with("*."))
        {
            self.warning(
                raw_domains,
                "domains",
                "multi-tenant project (`migrate: migrate_schemas`) without a wildcard domain"
                    .into(),
                "add `*.example.com` so nginx and ALLOWED_HOSTS answer tenant subdomains",
            );
        }
        let (env, secret_env) = self.app_env(raw.env, raw.secret_env);
        let health = raw.health.map(|h| self.health(h.value)).unwrap_or_default();
        Some(Django {
            health,
            env,
            secret_env,
            source,
            wsgi_module: raw.wsgi_module.value,
            settings_module: raw.settings_module.value,
            requirements: raw.requirements.value,
            workers: raw.workers.value,
            static_url: raw.static_url.value,
            media_url: raw.media_url.value,
            migrate: raw.migrate,
        })
    }

    /// `django.health`: a URL path of plain characters (it goes into a script and a request
    /// line), a real HTTP status, a timeout a release can wait.
    fn health(&mut self, raw: RawHealth) -> Health {
        let mut health = Health::default();
        if let Some(path) = raw.path {
            let ok = path.value.starts_with('/')
                && path.value.len() <= 200
                && path.value.chars().all(|c| c.is_ascii_graphic());
            if ok {
                health.path = path.value;
            } else {
                self.error(
                    &path,
                    "django.health.path",
                    format!("`{}` is not a URL path", path.value.escape_debug()),
                    "write a path that starts with `/`, without spaces, e.g. /up",
                );
            }
        }
        if let Some(status) = raw.status {
            if (100..=599).contains(&status.value) {
                health.status = Some(status.value);
            } else {
                self.error(
                    &status,
                    "django.health.status",
                    format!("{} is not an HTTP status", status.value),
                    "write the status the path answers when the app is well, e.g. 200",
                );
            }
        }
        if let Some(timeout) = raw.timeout {
            if (1..=600).contains(&timeout.value) {
                health.timeout_seconds = timeout.value;
            } else {
                self.error(
                    &timeout,
                    "django.health.timeout",
                    format!("{} seconds", timeout.value),
                    "give a release 1 to 600 seconds to answer (default 30)",
                );
            }
        }
        health
    }

    /// `django.env` and `django.secret_env`: names a shell and systemd read as variables, none
    /// of tandem's own, none in both; values on one line. A secret's value is never echoed.
    pub(super) fn app_env(
        &mut self,
        env: BTreeMap<String, Spanned<String>>,
        secret_env: BTreeMap<String, Spanned<PasswordSource>>,
    ) -> (BTreeMap<String, String>, BTreeMap<String, PasswordSource>) {
        let check_name = |v: &mut Self, name: &str, at: Position, field: &str| {
            let problem = if !identifier::is_env_name(name) {
                Some((
                    format!("`{name}` is not an environment variable name"),
                    "use letters, digits and `_`, not starting with a digit, e.g. SENTRY_DSN",
                ))
            } else if TANDEM_ENV.contains(&name) {
                Some((
                    format!("`{name}` is set by tandem"),
                    "choose another name; tandem writes this one from the rest of the config",
                ))
            } else {
                identifier::changes_how_programs_run(name).map(|why| {
                    (
                        format!("`{name}` cannot be set here: {why}"),
                        "leave it out; set what your app needs under a name of its own",
                    )
                })
            };
            if let Some((message, fix)) = problem {
                v.found.push(
                    Diagnostic::error(v.path, &v.source, at, &format!("{field}.{name}"), message)
                        .fix(fix),
                );
            }
        };
        let mut total = 0usize;
        for (name, value) in &env {
            check_name(self, name, Position::of(value), "django.env");
            if value.value.contains(['\n', '\r', '\0']) {
                self.error(
                    value,
                    &format!("django.env.{name}"),
                    format!("the value of `{name}` has a line break or NUL"),
                    "write a value on one line",
                );
            }
            if value.value.len() > ENV_VALUE_LIMIT {
                self.error(
                    value,
                    &format!("django.env.{name}"),
                    format!(
                        "the value of `{name}` has {} bytes, more than the {ENV_VALUE_LIMIT} an environment variable may have here",
                        value.value.len()
                    ),
                    "keep large data in a file the app reads, and put its path here",
                );
            }
            total += name.len() + value.value.len() + 2;
        }
        if total > ENV_TOTAL_LIMIT
            && let Some((name, value)) = env.iter().next_back()
        {
            self.error(
                value,
                &format!("django.env.{name}"),
                format!(
                    "django.env holds {total} bytes, more than the {ENV_TOTAL_LIMIT} every process of the app can be started with"
                ),
                "keep large data in files the app reads, and put their paths here",
            );
        }
        for (name, source) in &secret_env {
            check_name(self, name, Position::of(source), "django.secret_env");
            if env.contains_key(name) {
                self.error(
                    source,
                    &format!("django.secret_env.{name}"),
                    format!("`{name}` is in both django.env and django.secret_env"),
                    "keep it in one: secret_env when its value must not be shown",
                );
            }
            self.secret_source(source, &format!("django.secret_env.{name}"));
        }
        (
            env.into_iter().map(|(k, v)| (k, v.value)).collect(),
            secret_env.into_iter().map(|(k, v)| (k, v.value)).collect(),
        )
    }
}
