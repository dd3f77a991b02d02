"""One live consensus recomputation at a time: the newest running run is the live one."""

from django.db import migrations, models
from django.db.models import Q


def mark_live(apps, schema_editor):
    ConsensusRun = apps.get_model("labeling", "ConsensusRun")
    newest = ConsensusRun.objects.filter(status="running").order_by("-started_at").first()
    if newest is not None:
        ConsensusRun.objects.filter(pk=newest.pk).update(live=True)


class Migration(migrations.Migration):
    dependencies = [("labeling", "0004_galaxy_fields_from_above")]

    operations = [
        migrations.AddField(
            model_name="consensusrun",
            name="live",
            field=models.BooleanField(default=None, editable=False, null=True),
        ),
        migrations.RunPython(mark_live, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="consensusrun",
            name="live",
            field=models.BooleanField(default=True, editable=False, null=True, unique=True),
        ),
        migrations.AddConstraint(
            model_name="consensusrun",
            constraint=models.CheckConstraint(
                condition=Q(live__isnull=True) | Q(live=True), name="consensus_run_live_true_or_null"
            ),
        ),
    ]
