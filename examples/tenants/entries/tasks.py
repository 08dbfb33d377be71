import datetime
import socket

from celery import shared_task

from .models import Entry

# Written into each entry the task makes: a release that changes it shows the workers run the
# new code.
VERSION = "1"


@shared_task
def record_entry(person):
    """Queued by /enqueue/ on a tenant's site; runs in that tenant's schema (tenant-schemas-celery)."""
    Entry.objects.create(
        person=person,
        project=f"celery v{VERSION} on {socket.gethostname()}",
        hours=1,
        day=datetime.date.today(),
    )
