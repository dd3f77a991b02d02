"""Copy the latest ensemble median and the models' share of the priority onto labeling's Galaxy rows."""

from django.db import migrations


def fill(apps, schema_editor):
    Galaxy = apps.get_model("labeling", "Galaxy")
    EnsemblePrediction = apps.get_model("inference", "EnsemblePrediction")
    DiscrepancyAlarm = apps.get_model("inference", "DiscrepancyAlarm")
    latest = {}
    for row in EnsemblePrediction.objects.order_by("galaxy_id", "created_at").values(
        "galaxy_id", "median", "spread", "rejection_likelihood"
    ):
        latest[row["galaxy_id"]] = row
    alarms: dict[int, int] = {}
    for galaxy_id in DiscrepancyAlarm.objects.filter(status="open").values_list("galaxy_id", flat=True):
        alarms[galaxy_id] = alarms.get(galaxy_id, 0) + 1
    for galaxy_id in set(latest) | set(alarms):
        row = latest.get(galaxy_id)
        priority = 10.0 * alarms.get(galaxy_id, 0)
        if row is not None:
            priority += min(row["spread"], 20.0)
            if row["rejection_likelihood"] is not None:
                priority += 5.0 * (1.0 - abs(2.0 * row["rejection_likelihood"] - 1.0))
        Galaxy.objects.filter(pk=galaxy_id).update(
            predicted_inclination=row["median"] if row else None, model_priority=round(priority, 3)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("inference", "0004_ensemble_prediction_unique_constraint"),
        ("labeling", "0004_galaxy_fields_from_above"),
    ]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
