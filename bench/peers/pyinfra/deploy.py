"""The same work as tandem's playbooks/base.yml, db.yml and app.yml, as a pyinfra deploy.

bench/run writes the inventory (groups `db` and `app`; host data `tandem_name` (the server's
name in tandem.yml), `fqdn`, `internal_ip`) and
passes `--data files=DIR`: tandem's rendered tree (`tandem render`) with the two secrets
filled in, so both tools install byte-identical files and the comparison is of the same work.
Other data: `project`, `db_password`, `pg_version`.
"""

from pyinfra import host, inventory
from pyinfra.operations import apt, files, postgres, server, systemd
from pyinfra.operations.util import any_changed

project = host.data.project
src = f"{host.data.files}/{host.data.tandem_name}"


def put(path, mode="644", user="root", group="root", **kwargs):
    return files.put(
        name=f"file {path}",
        src=src + path,
        dest=path,
        mode=mode,
        user=user,
        group=group,
        **kwargs,
    )


def ufw(rule, name):
    # pyinfra has no ufw operation: a guarded shell command, as its users write it.
    server.shell(
        name=name,
        commands=[f"ufw status | grep -qF -- '# {rule.split(' comment ')[1][1:-1]}' || ufw {rule}"],
    )


# --- base: every server -------------------------------------------------------------------
apt.packages(
    name="Base packages",
    packages=["sudo", "ufw", "openssh-server", "openssh-sftp-server", "ca-certificates", "logrotate"],
    no_recommends=True,
    update=True,
    cache_time=3600,
)
server.user(
    name="Deploy user in the sudo group",
    user="deploy",
    shell="/bin/bash",
    create_home=True,
    groups=["sudo"],
    append=True,
)
files.directory(name="Deploy user's .ssh", path="/home/deploy/.ssh", user="deploy", group="deploy", mode="700")
put("/home/deploy/.ssh/authorized_keys", mode="600", user="deploy", group="deploy")
put("/etc/sudoers.d/tandem-deploy", mode="440")
sshd = put("/etc/ssh/sshd_config.d/00-tandem.conf")
server.shell(name="reload ssh", commands=["sshd -t && systemctl reload ssh"], _if=sshd.did_change)
server.hostname(name="Host name is the FQDN", hostname=host.data.fqdn)
files.line(
    name="FQDN in /etc/hosts",
    path="/etc/hosts",
    line=r"^127\.0\.1\.1\s.*",
    replace=f"127.0.1.1\t{host.data.fqdn} {host.data.fqdn.split('.')[0]}",
)
server.shell(
    name="Firewall defaults",
    commands=[
        "grep -qx 'DEFAULT_INPUT_POLICY=\"DROP\"' /etc/default/ufw || ufw default deny incoming",
        "grep -qx 'DEFAULT_OUTPUT_POLICY=\"ACCEPT\"' /etc/default/ufw || ufw default allow outgoing",
    ],
)
ufw("allow 22/tcp comment 'tandem: ssh'", "SSH allowed before the firewall goes up")
server.shell(
    name="Firewall on",
    commands=["grep -qx 'ENABLED=yes' /etc/ufw/ufw.conf || ufw --force enable"],
)

# --- db -----------------------------------------------------------------------------------
if "db" in host.groups:
    conf = f"/etc/postgresql/{host.data.pg_version}/main"
    put("/etc/postgresql-common/createcluster.d/tandem.conf")  # before the package creates the cluster
    apt.packages(name="PostgreSQL", packages=["postgresql"], no_recommends=True)
    listen = put(f"{conf}/conf.d/00-tandem.conf", user="postgres", group="postgres")
    tuning = put(f"{conf}/conf.d/10-tandem-tuning.conf", user="postgres", group="postgres")
    archiving = put(f"{conf}/conf.d/20-tandem-backup.conf", user="postgres", group="postgres")
    block_lines = open(f"{src}{conf}/pg_hba.conf.tandem-block").read().splitlines()
    hba = files.block(
        name="pg_hba admits each app server, nothing else",
        path=f"{conf}/pg_hba.conf",
        content=block_lines[1:-1],
        marker="# {mark}",
        begin=f"BEGIN tandem {project}: managed by tandem; edits inside this block are overwritten.",
        end=f"END tandem {project}",
    )
    systemd.service(name="PostgreSQL running and enabled", service="postgresql", running=True, enabled=True)
    systemd.service(
        name="restart postgresql",
        service="postgresql",
        restarted=True,
        _if=any_changed(listen, tuning, archiving, hba),
    )
    postgres.role(
        name="App role",
        role=project,
        password=host.data.db_password,
        login=True,
        inherit=True,
        _sudo=True,
        _sudo_user="postgres",
    )
    postgres.sql(
        name="Role settings as Django recommends",
        sql=(
            f"ALTER ROLE \"{project}\" SET client_encoding TO 'utf8'; "
            f"ALTER ROLE \"{project}\" SET default_transaction_isolation TO 'read committed'; "
            f"ALTER ROLE \"{project}\" SET timezone TO 'UTC';"
        ),
        _sudo=True,
        _sudo_user="postgres",
    )
    postgres.database(
        name="App database owned by its role",
        database=project,
        owner=project,
        encoding="UTF8",
        template="template0",
        _sudo=True,
        _sudo_user="postgres",
    )
    postgres.sql(
        name="Nobody else may connect",
        sql=f'REVOKE CONNECT, TEMPORARY ON DATABASE "{project}" FROM PUBLIC;',
        _sudo=True,
        _sudo_user="postgres",
    )
    for app_host in inventory.get_group("app"):
        ip = app_host.data.internal_ip
        ufw(
            f"allow proto tcp from {ip} to any port 5432 comment 'tandem: postgresql from {app_host.data.tandem_name}'",
            f"PostgreSQL port open to {app_host.data.tandem_name}",
        )

# --- app ----------------------------------------------------------------------------------
if "app" in host.groups:
    root = f"/srv/{project}"
    apt.packages(
        name="Python, libpq, nginx (no compiler, as tandem)",
        packages=["python3", "python3-venv", "libpq5", "nginx"],
        no_recommends=True,
    )
    server.group(name="App group", group=project, system=True)
    server.user(
        name="Unprivileged user that runs the app",
        user=project,
        group=project,
        system=True,
        home=root,
        create_home=False,
        shell="/usr/sbin/nologin",
    )
    for path in [root, f"{root}/releases", f"{root}/static", f"{root}/media"]:
        files.directory(name=f"directory {path}", path=path, user=project, group=project, mode="755")
    files.directory(name="Configuration directory, root only", path=f"/etc/{project}", mode="700")
    env = put(f"/etc/{project}/env", mode="600")
    socket = put(f"/etc/systemd/system/gunicorn-{project}.socket")
    service = put(f"/etc/systemd/system/gunicorn-{project}.service")
    site = put(f"/etc/nginx/sites-available/{project}")
    enabled = files.link(
        name="nginx site enabled",
        path=f"/etc/nginx/sites-enabled/{project}",
        target=f"/etc/nginx/sites-available/{project}",
    )
    default = files.link(
        name="Distribution's default site removed",
        path="/etc/nginx/sites-enabled/default",
        present=False,
    )
    systemd.service(name="nginx running and enabled", service="nginx", running=True, enabled=True)
    server.shell(
        name="reload nginx",
        commands=["nginx -t && systemctl reload nginx"],
        _if=any_changed(site, enabled, default),
    )
    systemd.daemon_reload(name="systemd reads the units", _if=any_changed(socket, service))
    systemd.service(
        name="gunicorn socket listening",
        service=f"gunicorn-{project}.socket",
        running=True,
        enabled=True,
    )
    # Without a release gunicorn is not running yet, and stays so (as in tandem).
    server.shell(
        name="restart gunicorn",
        commands=[f"systemctl try-restart gunicorn-{project}.service"],
        _if=any_changed(env, socket, service),
    )
    ufw("allow 80/tcp comment 'tandem: http'", "HTTP open")
    # HTTPS is off in the benchmark's config: tandem opens 80 only.
