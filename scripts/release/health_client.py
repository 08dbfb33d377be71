# The release's health check in isolation, before it goes live: Django's test client asks
# HEALTH_PATH as HEALTH_HOST through the whole middleware stack, in this process: no gunicorn,
# no nginx, no visitor. A view that raises or answers an unaccepted status stops the release
# here, before any server switched. (The same check through nginx follows the switch.)
# A multi-tenant project (HEALTH_TENANT_SUFFIXES: the wildcard domains' suffixes) is also
# asked as its first tenant on a served subdomain, whose name goes to file descriptor 3 for the
# check through nginx.
import os
import re
import sys

from django.test import Client

host, path = os.environ["HEALTH_HOST"], os.environ["HEALTH_PATH"]
wanted = os.environ["HEALTH_STATUS"]
suffixes = os.environ.get("HEALTH_TENANT_SUFFIXES", "").split()


def first_tenant():
    """The first tenant's domain (oldest first) that nginx serves, or ""."""
    from django_tenants.utils import get_public_schema_name, get_tenant_domain_model

    domains = (
        get_tenant_domain_model()
        .objects.exclude(tenant__schema_name=get_public_schema_name())
        .order_by("pk")
        .values_list("domain", flat=True)[:100]
    )
    for domain in domains:
        if re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", domain) and any(
            domain.endswith(s) for s in suffixes
        ):
            return domain
    return ""


tenant = first_tenant() if suffixes else ""
for name in [host] + ([tenant] if tenant else []):
    print(f"== health before going live: GET {path} as {name}", file=sys.stderr)
    failure = None
    try:
        status = Client(HTTP_HOST=name).get(path, secure=os.environ["HEALTH_SCHEME"] == "https").status_code
    except Exception as err:  # the view's own exception: the test client raises it
        status, failure = None, f"{type(err).__name__}: {err}"
    if status is None or not (status < 500 if wanted == "below-500" else status == int(wanted)):
        said = f"raised {failure}" if failure else f"answered {status}"
        print(f"health check failed before going live: {path} as {name} {said}", file=sys.stderr)
        sys.exit(1)
try:
    with os.fdopen(3, "w") as out:
        out.write(tenant)
except OSError:
    pass
