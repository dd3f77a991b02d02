"""Every run model shares giz_site.models.BackgroundRun (its columns, and "succeeded" for "done")."""

import django.utils.timezone
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
    _rename_statuses(
        apps, ["labeling.ConsensusRun", "labeling.CatalogExport"], OLD_TO_NEW, mark_finished=["labeling.CatalogExport"]
    )
    # A recomputation was created as it started: its creation time is its start.
    apps.get_model("labeling", "ConsensusRun").objects.update(created_at=models.F("started_at"))


def backwards(apps, schema_editor):
    _rename_statuses(
        apps, ["labeling.ConsensusRun", "labeling.CatalogExport"], {new: old for old, new in OLD_TO_NEW.items()}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0006_catalogue"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="consensusrun",
            options={"ordering": ["-created_at"]},
        ),
        migrations.AddField(
            model_name="catalogexport",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="catalogexport",
            name="live",
            field=models.BooleanField(default=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="consensusrun",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="catalogexport",
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
        migrations.AlterField(
            model_name="consensusrun",
            name="started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="consensusrun",
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
