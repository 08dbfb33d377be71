from django.contrib import admin
from django.urls import path

from entries.views import entry_list

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", entry_list, name="entry-list"),
]
