# Hands this db server's PostgreSQL to Patroni: the first member seeds a new cluster with its
# data; the other joins as a copy of the primary. Set before this runs (quoted): UNIT, REST,
# ETCD, SCOPE, INSTANCE, CONFIG (Patroni's file), DATA, CONF_DIR, BIN, SEED (1 or 0), MEMBER,
# SYNCHRONOUS (true or false: commits wait for the standby), SHARED_ARGUMENTS (patronictl edit-config's, quoted
# words); ROLES_SQL_BASE (the replication roles, verifiers only, base64); REBUILD (1: a
# standby's data is set aside even though it is of this cluster, as after the primary was
# restored to an earlier moment).
set -e
ectl() { ETCDCTL_API=3 etcdctl --endpoints="$ETCD" --dial-timeout=2s --command-timeout=4s "$@"; }

# Runs the rest of its arguments once a second until they succeed, at most $1 times; then
# says $2 and fails the script.
retry() {
    tries=$1 why=$2
    shift 2
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        if [ "$i" -ge "$tries" ]; then
            echo "$why" >&2
            exit 1
        fi
        sleep 1
    done
}

# Patroni runs PostgreSQL, as its REST API says: the leader, or a replica that streams.
# Leaves what it said in $state.
state=""
patroni_runs() {
    state=$(python3 -c 'import json, sys, urllib.request
s = json.load(urllib.request.urlopen(sys.argv[1] + "/patroni", timeout=3))
print(s.get("state", ""), s.get("role", ""))' "$REST" 2>/dev/null) || state=""
    case "$state" in
    "running master" | "running primary" | "running replica" | "streaming replica") return 0 ;;
    esac
    return 1
}

# etcd's quorum first: a linearizable read answers only while a majority of members is up.
retry 90 "etcd has no quorum after 90 s: are etcd on the witness and on the other db server up? (journalctl -u etcd there)" \
    ectl get "/service/$SCOPE/initialize"
cluster_id=$(ectl get --print-value-only "/service/$SCOPE/initialize")
own_id=$("$BIN/pg_controldata" "$DATA" 2>/dev/null | sed -n 's/^Database system identifier: *//p') || own_id=""

# An in-place restore removes the cluster's record and marks which member's data must seed
# it again (/tandem/<scope>/restoring); a run cut off there must not seed from another.
restoring=""
if [ -z "$cluster_id" ]; then
    restoring=$(ectl get --print-value-only "/tandem/$SCOPE/restoring")
fi
if [ -n "$restoring" ] && [ "$restoring" != "$MEMBER" ]; then
    echo "cluster $SCOPE is being restored in place on $restoring (a restore still running, or one that was cut off): the cluster must start again from $restoring's data, not $MEMBER's. Run the same \`tandem restore --in-place\` again (it goes on from $restoring), or, to give the restore up, remove the mark: etcdctl del /tandem/$SCOPE/restoring" >&2
    exit 1
fi

if [ -z "$cluster_id" ]; then
    if [ "$SEED" != 1 ]; then
        echo "cluster $SCOPE has no primary yet: the first db server in tandem.yml seeds it; apply with it reachable" >&2
        exit 1
    fi
    # The roles the standby replicates and rewinds as, made while PostgreSQL still runs as
    # Debian's cluster. Committed locally: data that ran under Patroni in synchronous mode
    # may still name a standby in synchronous_standby_names, and a commit would wait for it
    # forever (seen in CI after both Patronis were stopped at once).
    systemctl start "postgresql@$INSTANCE"
    { echo 'SET synchronous_commit = local;'; printf '%s\n' "$ROLES_SQL_BASE" | base64 -d; } |
        (cd / && timeout 120 runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres) ||
        { echo "$MEMBER: could not make the cluster's roles (psql above, or no answer within 120 s)" >&2; exit 1; }
elif [ "$cluster_id" != "$own_id" ] || [ "$REBUILD" = 1 ]; then
    # Data of another cluster (a new server's own, empty one), or of a history the restored
    # primary left: set aside, never deleted; Patroni copies the primary's in its place.
    systemctl stop "postgresql@$INSTANCE" 2>/dev/null || true
    if [ -d "$DATA" ]; then
        aside="$DATA.before-cluster-$(date +%Y%m%d%H%M%S)"
        mv "$DATA" "$aside"
        echo "$MEMBER: its own data directory set aside as $aside; copying the primary's"
    fi
fi

# Debian's own unit must not start this cluster beside Patroni, at boot or by hand.
echo manual >"$CONF_DIR/start.conf"
systemctl stop "postgresql@$INSTANCE" 2>/dev/null || true
systemctl enable --quiet "$UNIT"
systemctl start "$UNIT"

retry 600 "Patroni did not bring PostgreSQL up on $MEMBER within 600 s: journalctl -u $UNIT" patroni_runs

# A cluster that takes over a running PostgreSQL keeps Patroni's defaults in etcd, not the
# configuration's bootstrap part: the seed writes tandem's there once it leads (the leader
# writes the configuration key shortly after it leads: retried until it has).
if [ -z "$cluster_id" ]; then
    retry 60 "could not set the cluster's configuration in etcd within 60 s: patronictl -c $CONFIG show-config" \
        eval "patronictl -c \"\$CONFIG\" edit-config --force $SHARED_ARGUMENTS"
    # The restored data leads the cluster again: the restore's mark has done its work.
    if [ "$restoring" = "$MEMBER" ]; then
        retry 30 "could not remove /tandem/$SCOPE/restoring from etcd within 30 s" ectl del "/tandem/$SCOPE/restoring"
    fi
fi

# In synchronous mode a joining standby is done once the primary waits for it (Patroni names it
# within a loop or two), so a verify right after the run finds commits protected.
if [ "$SYNCHRONOUS" = true ] && [ "${state#* }" = replica ]; then
    retry 60 "$MEMBER streams but the primary did not make it its synchronous standby within 60 s: patronictl -c $CONFIG list" \
        python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/sync", timeout=3)' "$REST"
fi
echo "$MEMBER: ${state#* } in cluster $SCOPE"
