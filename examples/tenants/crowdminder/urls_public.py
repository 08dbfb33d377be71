"""The public site on the apex domain: lists the tenants."""
from django.urls import path

from customers.views import home

urlpatterns = [path("", home, name="home")]
