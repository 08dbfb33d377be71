from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Entry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("person", models.CharField(max_length=100)),
                ("project", models.CharField(max_length=100)),
                ("hours", models.DecimalField(decimal_places=2, max_digits=5)),
                ("day", models.DateField()),
            ],
            options={"ordering": ["-day", "person"], "verbose_name_plural": "entries"},
        ),
    ]
