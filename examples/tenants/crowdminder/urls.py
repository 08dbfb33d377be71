"""Tenant sites (<tenant>.<apex>): the tenant's own entries."""
from django.urls import path

from entries.views import entry_list, enqueue

urlpatterns = [
    path("", entry_list, name="entry-list"),
    path("enqueue/", enqueue, name="enqueue"),
]
