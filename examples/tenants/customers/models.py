from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Client(TenantMixin):
    """A customer: one PostgreSQL schema, reached on its own subdomain."""

    name = models.CharField(max_length=100)
    auto_create_schema = True

    def __str__(self):
        return self.name


class Domain(DomainMixin):
    pass


class Tick(models.Model):
    """A beat tick (customers/tasks.py): one per schedule interval, whichever worker ran it."""

    at = models.DateTimeField(auto_now_add=True)
    worker = models.CharField(max_length=100)
