import socket

from celery import shared_task

from .models import Tick


@shared_task
def tick():
    """beat's schedule: one row per tick in the public schema, with the worker that ran it."""
    Tick.objects.create(worker=socket.gethostname())
