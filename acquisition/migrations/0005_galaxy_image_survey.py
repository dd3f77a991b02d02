"""Every stored image came from its galaxy's survey (SDSS for every galaxy so far)."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery

import labeling.models


def galaxy_survey_for_every_image(apps, schema_editor):
    GalaxyImage = apps.get_model("acquisition", "GalaxyImage")
    Galaxy = apps.get_model("labeling", "Galaxy")
    GalaxyImage.objects.filter(survey__isnull=True).update(
        survey=Subquery(Galaxy.objects.filter(pk=OuterRef("galaxy_id")).values("survey_id")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("acquisition", "0004_background_run"),
        ("labeling", "0009_survey"),
    ]

    operations = [
        migrations.AddField(
            model_name="galaxyimage",
            name="survey",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="images", to="labeling.survey"
            ),
        ),
        migrations.RunPython(galaxy_survey_for_every_image, migrations.RunPython.noop),
        # As for Galaxy.survey: the callable default stays in Python, the column only becomes NOT NULL.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="galaxyimage",
                    name="survey",
                    field=models.ForeignKey(
                        default=labeling.models.default_survey_id,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="images",
                        to="labeling.survey",
                    ),
                ),
            ],
            database_operations=[
                migrations.AlterField(
                    model_name="galaxyimage",
                    name="survey",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="images", to="labeling.survey"
                    ),
                ),
            ],
        ),
    ]
