from django.db import models


class Entry(models.Model):
    """Time spent on a project, as in the seed's time-tracking app."""

    person = models.CharField(max_length=100)
    project = models.CharField(max_length=100)
    hours = models.DecimalField(max_digits=5, decimal_places=2)
    day = models.DateField()

    class Meta:
        ordering = ["-day", "person"]
        verbose_name_plural = "entries"

    def __str__(self):
        return f"{self.person}: {self.hours}h on {self.project} ({self.day})"
