"""Celery for crowdminder, tenant-aware: tenant-schemas-celery records the schema a task is sent
from and runs the task in it, so a worker writes where the request that queued it came from.
The broker is the Redis tandem installs (CELERY_BROKER_URL in the env file)."""
import os

from tenant_schemas_celery.app import CeleryApp as TenantAwareCeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crowdminder.settings")

app = TenantAwareCeleryApp("crowdminder")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
