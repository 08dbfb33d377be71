# A planned switchover through Patroni's REST API on the primary: the candidate standby
# becomes the primary, the old primary its standby. Waits until the cluster says so.
# Arguments: the primary's REST URL, its member name, the candidate's member name.
import json
import sys
import time
import urllib.error
import urllib.request

rest, leader, candidate = sys.argv[1:4]
# Patroni 3.0 reads `leader` (and the older `master`).
body = json.dumps({"leader": leader, "master": leader, "candidate": candidate}).encode()
request = urllib.request.Request(
    rest + "/switchover",
    data=body,
    method="POST",
    headers={"Content-Type": "application/json"},
)
try:
    urllib.request.urlopen(request, timeout=60).read()
except urllib.error.HTTPError as e:
    sys.exit("Patroni refused the switchover: " + e.read().decode(errors="replace").strip())
deadline = time.time() + 90
seen = ""
while time.time() < deadline:
    try:
        members = json.load(urllib.request.urlopen(rest + "/cluster", timeout=3))["members"]
        roles = {m["name"]: (m.get("role", ""), m.get("state", "")) for m in members}
        seen = ", ".join("%s %s %s" % (n, r, s) for n, (r, s) in sorted(roles.items()))
        new_role, new_state = roles.get(candidate, ("", ""))
        old_role, old_state = roles.get(leader, ("", ""))
        if new_role == "leader" and new_state == "running" and old_role != "leader" and old_state in ("running", "streaming"):
            print(seen)
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.5)
sys.exit("the switchover did not finish within 90 s (the cluster says: %s)" % (seen or "nothing"))
