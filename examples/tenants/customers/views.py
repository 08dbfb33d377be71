from django.shortcuts import render

from .models import Client


def home(request):
    tenants = Client.objects.exclude(schema_name="public").order_by("name")
    return render(request, "customers/home.html", {"tenants": tenants})
