# The failover drill's load: Entry rows written through Django (the app's own settings and env
# file, so the same multi-host DATABASE_HOST), about 20 a second, each on a new connection as
# a request with CONN_MAX_AGE=0 would. Every write is logged: "ok <time> <id>" once Django has
# the id back (acknowledged), "fail <time> <error>" otherwise. With DRILL_RETRIES=N a failed
# write is tried again up to N times, half a second apart, as a retrying client would (logged
# under the time of its first try; "fail" only when every try failed).
import os, time
from django.db import connection
from entries.models import Entry
duration = float(os.environ.get("DRILL_SECONDS", "60"))
retries = int(os.environ.get("DRILL_RETRIES", "0"))
log = open(os.environ.get("DRILL_LOG", "/tmp/drill.log"), "a", buffering=1)
end = time.time() + duration
i = 0
while time.time() < end:
    t = time.time()
    for attempt in range(retries + 1):
        try:
            e = Entry.objects.create(person="drill", project=str(i), hours=1, day="2026-01-01")
            log.write("ok %.3f %d\n" % (t, e.id))
            break
        except Exception as ex:
            if attempt == retries:
                log.write("fail %.3f %s\n" % (t, type(ex).__name__))
            else:
                time.sleep(0.5)
        finally:
            connection.close()
    i += 1
    time.sleep(max(0.0, 0.05 - (time.time() - t)))
log.write("done\n")
