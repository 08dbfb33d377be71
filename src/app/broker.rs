//! The `broker` step: Redis for the background processes, on the server `broker:` names (the
//! db server by default). Debian's package and settings, with tandem's on top: bound to
//! localhost and the internal IP, a password, and ufw admitting only the app servers to its
//! port, like PostgreSQL's.

use crate::engine::templates::Templates;
use crate::engine::vars::Vars;
use crate::model::desired::{FileSpec, Op, Secrecy};
use crate::model::ufw::UfwRule;

pub fn ops(
    config: &crate::config::Config,
    vars: &Vars,
    t: &mut Templates,
) -> anyhow::Result<Vec<Op>> {
    if !vars.broker.here {
        return Ok(Vec::new());
    }
    let mut ops = vec![
        Op::Packages {
            names: vec!["redis-server".into()],
        },
        Op::File(
            FileSpec::new(
                "/etc/redis/tandem.conf",
                t.render("redis/tandem.conf", vars)?,
                0o640,
                "root",
            )
            .group("redis")
            .secret(Secrecy::Masked { shown: Vec::new() }),
        ),
        Op::File(FileSpec::new(
            "/etc/systemd/system/redis-server.service.d/tandem.conf",
            t.render("redis/override.conf", vars)?,
            0o644,
            "root",
        )),
        Op::Service {
            name: "redis-server".into(),
            enabled: true,
            running: true,
        },
    ];
    for app in config.app_servers() {
        ops.push(Op::UfwAllow(UfwRule::from_server(
            vars.broker.port,
            "tcp",
            app,
            "redis",
        )));
    }
    Ok(ops)
}
