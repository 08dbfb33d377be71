from django.shortcuts import render

from .models import Entry


def entry_list(request):
    return render(request, "entries/list.html", {"entries": Entry.objects.all()[:100]})
