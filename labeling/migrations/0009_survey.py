"""Surveys: the SDSS reference survey that every galaxy so far belongs to, and the survey's priority share."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import labeling.models


def sdss_for_every_galaxy(apps, schema_editor):
    Survey = apps.get_model("labeling", "Survey")
    Galaxy = apps.get_model("labeling", "Galaxy")
    sdss, _ = Survey.objects.get_or_create(
        slug="sdss",
        defaults={
            "name": "Sloan Digital Sky Survey",
            "pixel_scale": 0.396127,
            "bands": "gri",
            "source_kind": "sdss",
            "data_release": settings.GIZ_SDSS_DATA_RELEASE,
            "is_reference": True,
        },
    )
    Galaxy.objects.filter(survey__isnull=True).update(survey=sdss)


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0008_volunteer_model"),
    ]

    operations = [
        migrations.CreateModel(
            name="Survey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "slug",
                    models.SlugField(
                        help_text='Short name used by commands and the API, e.g. "sdss".', max_length=32, unique=True
                    ),
                ),
                ("name", models.CharField(max_length=128)),
                (
                    "pixel_scale",
                    models.FloatField(help_text="Native pixel scale of the survey's images.", verbose_name="arcsec/pixel"),
                ),
                (
                    "bands",
                    models.CharField(
                        blank=True,
                        help_text='Passbands served as separate images, e.g. "gri"; empty: colour only.',
                        max_length=16,
                    ),
                ),
                (
                    "source_kind",
                    models.CharField(
                        choices=[
                            ("sdss", "SDSS cutout service"),
                            ("hips", "HiPS survey through hips2fits"),
                            ("template", "Cutout URL template"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "hips_id",
                    models.CharField(
                        blank=True,
                        help_text='e.g. "CDS/P/DESI-Legacy-Surveys/DR10/color".',
                        max_length=255,
                        verbose_name="HiPS id",
                    ),
                ),
                (
                    "url_template",
                    models.CharField(
                        blank=True,
                        help_text="Cutout URL with {ra}, {dec}, {size}, {scale} and {band} placeholders.",
                        max_length=1024,
                    ),
                ),
                ("data_release", models.CharField(blank=True, max_length=32)),
                (
                    "is_reference",
                    models.BooleanField(default=False, help_text="The survey the models are trained on (SDSS)."),
                ),
                (
                    "needs_adaptation",
                    models.BooleanField(
                        default=False, help_text="The models fall short on it: volunteers see its galaxies first."
                    ),
                ),
                (
                    "adaptation_reason",
                    models.TextField(blank=True, help_text="Why needs_adaptation was last set or cleared."),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["-is_reference", "slug"],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("is_reference", True)), fields=("is_reference",), name="one_reference_survey"
                    ),
                    models.CheckConstraint(condition=models.Q(("pixel_scale__gt", 0)), name="survey_pixel_scale_positive"),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("source_kind", "hips"), _negated=True),
                            models.Q(("hips_id", ""), _negated=True),
                            _connector="OR",
                        ),
                        name="survey_hips_has_id",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("source_kind", "template"), _negated=True),
                            models.Q(("url_template", ""), _negated=True),
                            _connector="OR",
                        ),
                        name="survey_template_has_url",
                    ),
                ],
            },
        ),
        migrations.AddField(
            model_name="galaxy",
            name="survey_priority",
            field=models.FloatField(
                db_default=0.0, default=0.0, help_text="The survey's share of the priority: it needs adaptation."
            ),
        ),
        migrations.AddField(
            model_name="galaxy",
            name="survey",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="galaxies", to="labeling.survey"
            ),
        ),
        migrations.RunPython(sdss_for_every_galaxy, migrations.RunPython.noop),
        # The callable default is Python-side only: the column just becomes NOT NULL (every row has a survey now),
        # so the schema editor never calls today's code against yesterday's tables.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="galaxy",
                    name="survey",
                    field=models.ForeignKey(
                        default=labeling.models.default_survey_id,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="galaxies",
                        to="labeling.survey",
                    ),
                ),
            ],
            database_operations=[
                migrations.AlterField(
                    model_name="galaxy",
                    name="survey",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="galaxies", to="labeling.survey"
                    ),
                ),
            ],
        ),
    ]
