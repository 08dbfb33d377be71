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
