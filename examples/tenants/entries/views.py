from django.http import JsonResponse
from django.shortcuts import render

from .models import Entry
from .tasks import record_entry


def entry_list(request):
    return render(request, "entries/list.html", {"entries": Entry.objects.all()[:100]})


def enqueue(request):
    """Queues `record_entry` for this tenant (a demonstration: a GET that changes data)."""
    result = record_entry.delay(request.GET.get("person", "someone"))
    return JsonResponse({"task": result.id})
