"""Every run model shares giz_site.models.BackgroundRun (its columns, and "succeeded" for "done")."""

from django.db import migrations, models


# One status vocabulary for every background run: "done" becomes "succeeded"; finished runs are not live.
OLD_TO_NEW = {"done": "succeeded"}
FINISHED = ["succeeded", "failed"]


def _rename_statuses(apps, models, mapping, *, mark_finished=()):
    for name in models:
        model = apps.get_model(*name.split("."))
        for old, new in mapping.items():
            model.objects.filter(status=old).update(status=new)
        if name in mark_finished:
            model.objects.filter(status__in=FINISHED).update(live=None)


def forwards(apps, schema_editor):
    _rename_statuses(apps, ["acquisition.AcquisitionJob"], OLD_TO_NEW, mark_finished=["acquisition.AcquisitionJob"])


def backwards(apps, schema_editor):
    _rename_statuses(apps, ["acquisition.AcquisitionJob"], {new: old for old, new in OLD_TO_NEW.items()})


class Migration(migrations.Migration):
    dependencies = [
        ("acquisition", "0003_galaxy_color_image"),
    ]

    operations = [
        migrations.RenameField(
            model_name="acquisitionjob",
            old_name="succeeded",
            new_name="done",
        ),
        migrations.AddField(
            model_name="acquisitionjob",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="acquisitionjob",
            name="live",
            field=models.BooleanField(default=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="acquisitionjob",
            name="started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="acquisitionjob",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("running", "Running"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                ],
                db_index=True,
                default="queued",
                max_length=16,
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
