//! PostgreSQL settings derived from the db server's machine (memory, CPUs, disk) and from the
//! config (how many connections the app servers can open), each with where it came from;
//! `database.settings` overrides any of them. Pure: the facts come from discovery.

use std::collections::BTreeMap;

use serde::Serialize;

/// What discovery found out about the db server's machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Machine {
    pub memory_mib: u64,
    pub cpus: u32,
    /// The data directory's disk as the kernel reports it: Some(false) for an SSD (not
    /// rotational), None when it is not visible.
    pub rotational: Option<bool>,
    /// Not read from the server (offline commands, or discovery could not tell).
    pub assumed: bool,
}

impl Machine {
    /// What offline commands (`check`, `render`) assume: a small cloud server.
    pub fn assumed() -> Machine {
        Machine {
            memory_mib: 4096,
            cpus: 2,
            rotational: Some(false),
            assumed: true,
        }
    }

    pub fn describe(&self) -> String {
        let disk = match self.rotational {
            Some(false) => "SSD",
            Some(true) => "rotational disk",
            None => "disk type not visible",
        };
        let assumed = if self.assumed {
            "; assumed, not read from the server"
        } else {
            ""
        };
        format!(
            "{} RAM, {} CPU(s), {disk}{assumed}",
            mib(self.memory_mib),
            self.cpus
        )
    }
}

/// Connections held open at most by the app: one per gunicorn worker on each app server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Demand {
    pub app_servers: u32,
    pub workers: u32,
    /// The background processes' connections, all servers together (`processes:`).
    pub background: u32,
}

/// Connections kept back for the superuser, tandem, migrations and an operator's psql:
/// `superuser_reserved_connections` (3) plus 7.
pub const RESERVED: u32 = 10;

impl Demand {
    /// Saturating: numbers from the config may be as large as their type takes.
    pub fn connections(&self) -> u32 {
        self.app_servers
            .saturating_mul(self.workers)
            .saturating_add(self.background)
    }

    /// The smallest max_connections that serves the app and the reserve.
    pub fn needed(&self) -> u32 {
        self.connections().saturating_add(RESERVED)
    }

    pub fn describe(&self) -> String {
        let background = match self.background {
            0 => String::new(),
            n => format!(" + {n} for background processes"),
        };
        format!(
            "{} app server(s) x {} gunicorn workers{background} + {RESERVED} reserved",
            self.app_servers, self.workers
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub name: String,
    /// As postgresql.conf takes it (quoted by the template).
    pub value: String,
    /// Where the value comes from, for the file's comment and the plan's diff.
    pub why: String,
}

/// The settings for `machine` and `demand`, `overrides` (database.settings) winning.
pub fn settings(
    machine: &Machine,
    demand: Demand,
    overrides: &BTreeMap<String, String>,
) -> Vec<Setting> {
    let ram = machine.memory_mib;
    let mut out: Vec<Setting> = Vec::new();
    let mut set = |name: &str, value: String, why: String| {
        out.push(Setting {
            name: name.into(),
            value,
            why,
        })
    };
    let max_connections = overrides
        .get("max_connections")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| u64::from(demand.needed().max(100)));
    set(
        "max_connections",
        max_connections.to_string(),
        format!("{}, at least 100", demand.describe()),
    );
    let shared_buffers = (ram / 4).clamp(128, 16 * 1024);
    set(
        "shared_buffers",
        size(shared_buffers * 1024),
        format!("25% of {} RAM (at most 16GB)", mib(ram)),
    );
    set(
        "effective_cache_size",
        size(ram * 3 / 4 * 1024),
        "75% of RAM: what the OS page cache and shared_buffers hold".into(),
    );
    set(
        "maintenance_work_mem",
        size((ram / 16).clamp(64, 2048) * 1024),
        "RAM / 16 (at most 2GB): VACUUM and CREATE INDEX".into(),
    );
    // max_connections comes from the config: at least 1 here, and the product saturates.
    let work_mem_kb = ((ram - shared_buffers.min(ram)).saturating_mul(1024)
        / max_connections.max(1).saturating_mul(3))
    .max(4096);
    set(
        "work_mem",
        size(work_mem_kb),
        "(RAM - shared_buffers) / (3 x max_connections), at least 4MB".into(),
    );
    set(
        "min_wal_size",
        "1GB".into(),
        "web workload: fewer checkpoints".into(),
    );
    set(
        "max_wal_size",
        "4GB".into(),
        "web workload: fewer checkpoints".into(),
    );
    set(
        "checkpoint_completion_target",
        "0.9".into(),
        "spread checkpoint writes".into(),
    );
    let (random_page_cost, io, disk) = match machine.rotational {
        Some(true) => ("4", "2", "a rotational disk"),
        Some(false) => ("1.1", "200", "an SSD"),
        None => ("1.1", "200", "disk type not visible: assumed SSD"),
    };
    set("random_page_cost", random_page_cost.into(), disk.into());
    set("effective_io_concurrency", io.into(), disk.into());
    let cpus = machine.cpus.max(1);
    set(
        "max_worker_processes",
        cpus.max(8).to_string(),
        format!("{cpus} CPU(s), at least 8"),
    );
    set(
        "max_parallel_workers",
        cpus.to_string(),
        format!("{cpus} CPU(s)"),
    );
    let per_gather = (cpus / 2).clamp(1, 4);
    set(
        "max_parallel_workers_per_gather",
        per_gather.to_string(),
        "half the CPUs, at most 4".into(),
    );
    set(
        "max_parallel_maintenance_workers",
        per_gather.to_string(),
        "half the CPUs, at most 4".into(),
    );
    for (name, value) in overrides {
        let why = "database.settings".to_string();
        let value = canonical(value);
        match out.iter_mut().find(|s| &s.name == name) {
            Some(s) => {
                s.value = value;
                s.why = why;
            }
            None => out.push(Setting {
                name: name.clone(),
                value,
                why,
            }),
        }
    }
    out
}

/// A size as PostgreSQL's SHOW prints it: in the largest unit that divides it exactly, so
/// that what tandem writes compares equal to what the server reports (`1GB`, not `1024MB`).
pub fn size(kb: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "TB"), (1 << 20, "GB"), (1 << 10, "MB")];
    for (factor, unit) in UNITS {
        if kb >= factor && kb.is_multiple_of(factor) {
            return format!("{}{unit}", kb / factor);
        }
    }
    format!("{kb}kB")
}

/// An override's value: a size (`2048MB`) in SHOW's form (`2GB`), anything else as written.
fn canonical(value: &str) -> String {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let kb = match &value[digits.len()..] {
        "kB" => 1,
        "MB" => 1 << 10,
        "GB" => 1 << 20,
        "TB" => 1 << 30,
        _ => return value.to_string(),
    };
    match digits.parse::<u64>() {
        Ok(n) => size(n * kb),
        Err(_) => value.to_string(),
    }
}

fn mib(n: u64) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} GiB", n / 1024)
    } else if n >= 1024 {
        format!("{:.1} GiB", n as f64 / 1024.0)
    } else {
        format!("{n} MiB")
    }
}

/// Settings `database.settings` may not change: tandem's promises rest on them (who can reach
/// the database, how passwords are stored, where the data and its config are).
pub const MANAGED: &[&str] = &[
    "listen_addresses",
    "port",
    "password_encryption",
    "hba_file",
    "ident_file",
    "config_file",
    "data_directory",
    "external_pid_file",
    "include",
    "include_dir",
    "include_if_exists",
];

/// A setting name as postgresql.conf writes it.
pub fn is_setting_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

/// A value that stays one quoted postgresql.conf value.
pub fn is_setting_value(value: &str) -> bool {
    !value.is_empty() && value.len() <= 1024 && !value.contains(['\'', '\\', '\n', '\r', '\0', '#'])
}

/// The machine from discovery's `mem_kb=`, `cpus=` and `rotational=` lines.
pub fn parse_machine(
    mem_kb: Option<&str>,
    cpus: Option<&str>,
    rotational: Option<&str>,
) -> Option<Machine> {
    let memory_mib = mem_kb?.trim().parse::<u64>().ok()? / 1024;
    let cpus = cpus?.trim().parse::<u32>().ok()?;
    (memory_mib > 0 && cpus > 0).then(|| Machine {
        memory_mib,
        cpus,
        assumed: false,
        rotational: match rotational.map(str::trim) {
            Some("0") => Some(false),
            Some("1") => Some(true),
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(settings: &[Setting], name: &str) -> String {
        settings
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value.clone())
            .unwrap_or_default()
    }

    #[test]
    fn derived_from_the_machine_and_the_app() {
        let machine = Machine {
            memory_mib: 16 * 1024,
            cpus: 8,
            rotational: Some(false),
            assumed: false,
        };
        let demand = Demand {
            app_servers: 2,
            workers: 5,
            background: 0,
        };
        let s = settings(&machine, demand, &BTreeMap::new());
        assert_eq!(value(&s, "max_connections"), "100");
        assert_eq!(value(&s, "shared_buffers"), "4GB");
        assert_eq!(value(&s, "effective_cache_size"), "12GB");
        assert_eq!(value(&s, "maintenance_work_mem"), "1GB");
        // (16384 - 4096) MiB / 300 = 41.9 MiB.
        assert_eq!(value(&s, "work_mem"), "41943kB");
        assert_eq!(value(&s, "random_page_cost"), "1.1");
        assert_eq!(value(&s, "max_parallel_workers_per_gather"), "4");
        assert!(
            s.iter()
                .all(|x| is_setting_name(&x.name) && is_setting_value(&x.value))
        );

        let big = Demand {
            app_servers: 8,
            workers: 17,
            background: 0,
        };
        let hdd = Machine {
            rotational: Some(true),
            ..machine
        };
        let s = settings(&hdd, big, &BTreeMap::new());
        assert_eq!(value(&s, "max_connections"), "146");
        assert_eq!(value(&s, "random_page_cost"), "4");
    }

    #[test]
    fn overrides_win_and_say_so() {
        let overrides = BTreeMap::from([
            ("max_connections".to_string(), "300".to_string()),
            ("jit".to_string(), "off".to_string()),
            ("shared_buffers".to_string(), "2048MB".to_string()),
        ]);
        let s = settings(
            &Machine::assumed(),
            Demand {
                app_servers: 1,
                workers: 3,
                background: 0,
            },
            &overrides,
        );
        let max = s.iter().find(|x| x.name == "max_connections").unwrap();
        assert_eq!(
            (max.value.as_str(), max.why.as_str()),
            ("300", "database.settings")
        );
        // work_mem follows the overridden max_connections: (4096 - 1024) MiB / 900, at least 4MB.
        assert_eq!(value(&s, "work_mem"), "4MB");
        assert_eq!(value(&s, "jit"), "off");
        assert_eq!(value(&s, "shared_buffers"), "2GB");
    }

    #[test]
    fn sizes_as_show_prints_them() {
        assert_eq!(size(1024 * 1024), "1GB");
        assert_eq!(size(6026 * 1024), "6026MB");
        assert_eq!(size(61709), "61709kB");
        assert_eq!(size(4096), "4MB");
        assert_eq!(canonical("1024MB"), "1GB");
        assert_eq!(canonical("1.5GB"), "1.5GB");
        assert_eq!(canonical("off"), "off");
    }

    #[test]
    fn machine_from_discovery() {
        assert_eq!(
            parse_machine(Some("16384000"), Some("4"), Some("0")),
            Some(Machine {
                memory_mib: 16000,
                cpus: 4,
                rotational: Some(false),
                assumed: false,
            })
        );
        assert_eq!(parse_machine(Some("x"), Some("4"), None), None);
        assert_eq!(
            parse_machine(Some("2048000"), Some("1"), Some(""))
                .unwrap()
                .rotational,
            None
        );
    }

    #[test]
    fn names_and_values() {
        assert!(is_setting_name("auto_explain.log_min_duration"));
        assert!(!is_setting_name("Shared_buffers"));
        assert!(!is_setting_name("a b"));
        assert!(is_setting_value("64MB"));
        assert!(!is_setting_value("x' # listen_addresses = '*"));
        assert!(!is_setting_value(""));
    }
}
