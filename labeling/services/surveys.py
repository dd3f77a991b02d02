"""Surveys: the reference one (SDSS) that models are trained on, and marking one as needing adaptation, which
sends volunteers its galaxies first."""

from django.conf import settings
from django.db import transaction
from django.db.models import F

from giz_site.exceptions import ApplicationError
from labeling.models import Galaxy, Survey

REFERENCE_SLUG = "sdss"
# Added to the label priority of every galaxy of a survey that needs adaptation. The other shares add up to a
# few tens of degrees (posterior width, model spread, 10 per open alarm), so this puts them all first.
ADAPTATION_PRIORITY = 1000.0


# Surveys staff can add by name (and the demo adds): HiPS ids as CDS names them; bands whose HiPS exist as
# <colour id's parent>/<band>.
KNOWN_SURVEYS = {
    "legacy": {
        "name": "DESI Legacy Imaging Surveys DR10",
        "pixel_scale": 0.262,
        "bands": "grz",
        "source_kind": Survey.SourceKind.HIPS,
        "hips_id": "CDS/P/DESI-Legacy-Surveys/DR10/color",
        "data_release": "dr10",
    },
    "panstarrs": {
        "name": "Pan-STARRS1 DR1",
        "pixel_scale": 0.25,
        "bands": "gri",
        "source_kind": Survey.SourceKind.HIPS,
        "hips_id": "CDS/P/PanSTARRS/DR1/color-z-zg-g",
        "data_release": "dr1",
    },
    "dss": {
        "name": "Digitized Sky Survey 2",
        "pixel_scale": 1.0,
        "bands": "",
        "source_kind": Survey.SourceKind.HIPS,
        "hips_id": "CDS/P/DSS2/color",
        "data_release": "dss2",
    },
}


def known_survey_ensure(slug: str) -> Survey:
    """One of KNOWN_SURVEYS, created on first use (ApplicationError for another slug)."""
    if slug not in KNOWN_SURVEYS:
        raise ApplicationError(
            f"No known survey {slug!r}; known: {', '.join(KNOWN_SURVEYS)}.", code="unknown_survey", status_code=400
        )
    survey, _ = Survey.objects.get_or_create(slug=slug, defaults=KNOWN_SURVEYS[slug])
    return survey


def _reference_defaults() -> dict:
    return {
        "name": "Sloan Digital Sky Survey",
        "pixel_scale": 0.396127,
        "bands": "gri",
        "source_kind": Survey.SourceKind.SDSS,
        "data_release": settings.GIZ_SDSS_DATA_RELEASE,
        "is_reference": True,
    }


def reference_survey() -> Survey:
    """The survey the models are trained on; created (SDSS) if missing, as after a test database flush."""
    survey = Survey.objects.filter(is_reference=True).first()
    if survey is None:
        survey, _ = Survey.objects.get_or_create(slug=REFERENCE_SLUG, defaults=_reference_defaults())
    return survey


def get_survey(slug: str, *, status_code: int = 404) -> Survey:
    """The survey with this slug, or an ApplicationError that lists the known ones (404 for a URL's slug; a
    form or file that names a survey passes 400)."""
    survey = Survey.objects.filter(slug=slug).first()
    if survey is None:
        known = ", ".join(Survey.objects.order_by("slug").values_list("slug", flat=True)) or "none"
        raise ApplicationError(
            f"Unknown survey {slug!r}; known surveys: {known}.", code="unknown_survey", status_code=status_code
        )
    return survey


def mark_needs_adaptation(survey: Survey, needs: bool, reason: str = "") -> Survey:
    """Set or clear a survey's "needs adaptation" flag, moving its galaxies to the front of the labeling queue
    (or back) in the same transaction.

    The survey's share is kept on each galaxy (survey_priority) and folded into label_priority, so the queue
    stays one walk down galaxy_to_label_idx. A vote or refit that recomputes a galaxy's priority meanwhile
    holds the galaxy's row lock, so the UPDATE below waits for it and then adjusts the committed value.
    """
    share = ADAPTATION_PRIORITY if needs else 0.0
    with transaction.atomic():
        locked = Survey.objects.select_for_update().get(pk=survey.pk)
        Galaxy.objects.filter(survey=locked).exclude(survey_priority=share).update(
            label_priority=F("label_priority") - F("survey_priority") + share, survey_priority=share
        )
        locked.needs_adaptation, locked.adaptation_reason = needs, reason
        locked.save(update_fields=["needs_adaptation", "adaptation_reason"])
    survey.needs_adaptation, survey.adaptation_reason = needs, reason
    return survey
