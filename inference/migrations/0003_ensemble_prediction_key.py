"""Ensemble summaries say which model versions made them; rows written twice before are merged.

The unique constraint follows in 0004: PostgreSQL refuses to alter a table with deferred foreign-key
checks pending from the deletes made here in the same transaction.
"""

from django.db import migrations, models


def fill_keys_and_merge_duplicates(apps, schema_editor):
    EnsemblePrediction = apps.get_model("inference", "EnsemblePrediction")
    DiscrepancyAlarm = apps.get_model("inference", "DiscrepancyAlarm")
    ModelVersion = apps.get_model("inference", "ModelVersion")
    ids = dict(ModelVersion.objects.values_list("name", "pk"))
    kept: dict[tuple, int] = {}
    # Newest first: the newest summary of an image and ensemble is the one kept.
    for row in EnsemblePrediction.objects.order_by("-created_at", "-pk").iterator():
        names = {name.removeprefix("reject:") for name in row.members}
        key = ",".join(str(pk) for pk in sorted(ids[n] for n in names if n in ids))
        identity = (row.galaxy_id, row.image_id, key)
        if identity in kept:
            DiscrepancyAlarm.objects.filter(ensemble_prediction_id=row.pk).update(
                ensemble_prediction_id=kept[identity]
            )
            row.delete()
            continue
        kept[identity] = row.pk
        EnsemblePrediction.objects.filter(pk=row.pk).update(ensemble_key=key)


class Migration(migrations.Migration):
    dependencies = [("inference", "0002_jobs_plots_output")]

    operations = [
        migrations.AddField(
            model_name="ensembleprediction",
            name="ensemble_key",
            field=models.CharField(
                default="",
                help_text="The model versions that answered (sorted ids): one summary per image and ensemble.",
                max_length=255,
            ),
            preserve_default=False,
        ),
        migrations.RunPython(fill_keys_and_merge_duplicates, migrations.RunPython.noop),
    ]
