# The release's health check in isolation, before it goes live: Django's test client asks
# HEALTH_PATH as HEALTH_HOST through the whole middleware stack, in this process: no gunicorn,
# no nginx, no visitor. A view that raises or answers an unaccepted status stops the release
# here, before any server switched. (The same check through nginx follows the switch.)
import os
import sys

from django.test import Client

host, path = os.environ["HEALTH_HOST"], os.environ["HEALTH_PATH"]
wanted = os.environ["HEALTH_STATUS"]
print(f"== health before going live: GET {path} as {host}", file=sys.stderr)
failure = None
try:
    status = Client(HTTP_HOST=host).get(path, secure=os.environ["HEALTH_SCHEME"] == "https").status_code
except Exception as err:  # the view's own exception: the test client raises it
    status, failure = None, f"{type(err).__name__}: {err}"
if status is None or not (status < 500 if wanted == "below-500" else status == int(wanted)):
    said = f"raised {failure}" if failure else f"answered {status}"
    print(f"health check failed before going live: {path} as {host} {said}", file=sys.stderr)
    sys.exit(1)
