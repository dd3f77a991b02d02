"""Reads for volunteer labeling: what the labeling page shows, a volunteer's figures, the leaderboard."""

import bisect
from dataclasses import dataclass

from django.core.files.storage import default_storage
from django.db.models import Avg, Count, F, Q, QuerySet, Value
from django.db.models.functions import Abs, Replace

from giz_site.process_cache import ProcessCache
from labeling import consensus as maths
from labeling import volunteer_model as vm
from labeling.models import (
    Assignment,
    ConsensusLabel,
    ConsensusRun,
    Galaxy,
    StandardGalaxy,
    Survey,
    VolunteerProfile,
    Vote,
)


@dataclass(frozen=True, slots=True)
class ModelState:
    """The volunteer model's global figures from the last refit (before any: the model's starting values)."""

    growth: float
    class_prior: tuple[float, float, float]
    sigma_typical: float


def model_state() -> ModelState:
    """Published by a refit as soon as it has written the volunteers' figures (the two belong together)."""
    run = (
        ConsensusRun.objects.filter(growth__isnull=False)
        .order_by("-id")
        .values("growth", "class_prior", "sigma_typical")
        .first()
    )
    if run is None:
        start = vm.ModelSettings()
        return ModelState(start.growth, (1 / 3, 1 / 3, 1 / 3), start.sigma_typical)
    return ModelState(run["growth"], tuple(run["class_prior"]), run["sigma_typical"])


# Every vote's posterior needs them; a refit publishes new ones once a night.
_model_state_kept = ProcessCache(lambda _: model_state(), seconds_setting="GIZ_PROCESS_CACHE_S")


def model_state_kept() -> ModelState:
    """model_state() as this process last read it, at most GIZ_PROCESS_CACHE_S ago (for the per-vote posterior).

    A refit's own catch-up reads model_state() afresh; a web process may go on with the previous parameters for
    that long after a refit published new ones (the next vote on a galaxy, or the next refit, uses them).
    """
    return _model_state_kept.get()


CONSENSUS_METHOD = "volunteer_model"  # labeling.volunteer_model: per-volunteer bias and sigma, fitted to every vote


def consensus_runs_published() -> list[dict]:
    """The refits that published volunteer-model figures (model_state), oldest first: id, status and dates."""
    return list(
        ConsensusRun.objects.filter(growth__isnull=False, started_at__isnull=False)
        .order_by("started_at", "id")
        .values("id", "status", "started_at", "finished_at")
    )


def consensus_run_in_force(*, runs: list[dict], at) -> dict | None:
    """The latest of `runs` started by `at`: the refit whose figures a label computed at `at` used.

    A label written while a refit is fitting (before it publishes) is credited to that refit a little early.
    """
    index = bisect.bisect_right([run["started_at"] for run in runs], at)
    return runs[index - 1] if index else None


def votes_of(*, volunteer) -> QuerySet[Vote]:
    """The volunteer's votes, newest first, with their galaxy and its consensus."""
    return Vote.objects.filter(volunteer=volunteer).select_related("galaxy", "galaxy__consensus")


def assignment_galaxy_id(*, volunteer, token: str) -> int | None:
    """The galaxy served under this token to this volunteer, if any."""
    return Assignment.objects.filter(volunteer=volunteer, token=token).values_list("galaxy_id", flat=True).first()


def shown_image_urls(*, galaxy_ids) -> dict[int, dict[str, str]]:
    """galaxy id -> {url, unrotated_url}: the composite turned with its major axis horizontal (the composite itself
    until acquisition has made that copy) and the composite as observed, in one query.

    Only image URLs: the angle of the turn, like any position angle, stays off volunteer-facing pages.
    """
    rows = (
        Galaxy.objects.filter(pk__in=list(galaxy_ids))
        .exclude(color_image="")
        .values_list("pk", "color_image", "color_image_horizontal")
    )
    return {
        pk: {"url": default_storage.url(horizontal or name), "unrotated_url": default_storage.url(name)}
        for pk, name, horizontal in rows
    }


def _standards_read(ids=None) -> dict[int, dict]:
    standards = StandardGalaxy.objects.filter(active=True) if ids is None else StandardGalaxy.objects.filter(id__in=ids)
    rows = standards.values_list(
        "id", "inclination", "galaxy_id", "galaxy__color_image", "galaxy__color_image_horizontal"
    )
    return {
        sid: {
            "id": sid,
            "inclination": round(inclination, 1),
            "exact_inclination": inclination,
            "galaxy_id": galaxy_id,
            # Turned major axis horizontal (the composite itself until acquisition has made that copy).
            "url": default_storage.url(horizontal or name) if name else "",
            "unrotated_url": default_storage.url(name) if name else "",
        }
        for sid, inclination, galaxy_id, name, horizontal in rows
    }


# Every assignment draws and shows dozens of the few hundred standards; they change when staff edit them.
_standards_active = ProcessCache(lambda _: _standards_read(), seconds_setting="GIZ_PROCESS_CACHE_S")


def standards_active() -> dict[int, dict]:
    """Active standards by id: {id, inclination (rounded), exact_inclination, galaxy_id, url, unrotated_url}.

    Kept per process for GIZ_PROCESS_CACHE_S; do not change the dicts.
    """
    return _standards_active.get()


def standards_shown(*, standard_ids) -> dict[int, dict]:
    """standard id -> {id, inclination, url, unrotated_url} for the page: the active ones from the process's copy,
    others read."""
    active = standards_active()
    missing = [sid for sid in standard_ids if sid not in active]  # deactivated since the assignment was drawn
    found = {**active, **_standards_read(missing)} if missing else active
    return {
        sid: {key: found[sid][key] for key in ("id", "inclination", "url", "unrotated_url")}
        for sid in standard_ids
        if sid in found
    }


def _grid_laid(shown: dict[int, dict]) -> dict[int, int]:
    """Grid degree -> standard id: the assignment's standards laid on the page's grid, nearest first."""
    draw: dict[int, int] = {}
    for standard in sorted(shown.values(), key=lambda s: s["id"]):
        degree = round(standard["inclination"])
        if 45 <= degree <= 90 and degree not in draw:
            draw[degree] = standard["id"]
    return draw


def assignment_grid(*, assignment: Assignment) -> dict[str, int]:
    """Grid degree (as a string) -> id of the standard shown there, as assignment_page_data lays them out."""
    shown = standards_shown(standard_ids=assignment.standard_ids)
    return {str(degree): sid for degree, sid in sorted(_grid_laid(shown).items())}


def assignment_page_data(*, assignment: Assignment, draw: dict[int, int] | None = None) -> dict:
    """What the labeling page's script needs: the target and one standard per grid degree.

    `draw` maps degree -> standard id; without it the assignment's standards are laid on the grid, nearest first.
    """
    shown = standards_shown(standard_ids=assignment.standard_ids)
    draw = _grid_laid(shown) if draw is None else draw
    galaxy = assignment.galaxy
    return {
        "token": assignment.token,
        "galaxy": {
            "id": galaxy.id,
            "pgc": galaxy.pgc,
            "name": galaxy.name,
            **shown_image_urls(galaxy_ids=[galaxy.id]).get(galaxy.id, {"url": "", "unrotated_url": ""}),
        },
        "standards": {str(degree): shown[sid] for degree, sid in sorted(draw.items()) if sid in shown},
    }


def gold_feedback(*, vote: Vote) -> dict | None:
    """For a vote on a gold galaxy: the answer against the known value and the standards that bracket it."""
    galaxy = vote.galaxy
    if not vote.was_gold or galaxy.known_inclination is None:
        return None
    known = galaxy.known_inclination
    below = StandardGalaxy.objects.filter(active=True, inclination__lte=known).order_by("-inclination").first()
    above = StandardGalaxy.objects.filter(active=True, inclination__gt=known).order_by("inclination").first()
    urls = {pk: u["url"] for pk, u in shown_image_urls(galaxy_ids=[s.galaxy_id for s in (below, above) if s]).items()}
    if vote.inclination is not None:
        answer, error = f"{vote.inclination:.1f}°", abs(vote.inclination - max(known, 45.0))
    else:
        answer, error = vote.get_flag_display(), (max(known - 45.0, 0.0) if vote.flag == "face_on" else None)
    verdict = "spot on" if error is not None and error <= 3 else "close" if error is not None and error <= 6 else None
    return {
        "galaxy": galaxy,
        "galaxy_url": shown_image_urls(galaxy_ids=[galaxy.id]).get(galaxy.id, {"url": ""})["url"],
        "known": round(known, 1),
        "known_face_on": known < 45,
        "answer": answer,
        "error": round(error, 1) if error is not None else None,
        "verdict": verdict,
        "bracket": [
            {"inclination": round(s.inclination, 1), "url": urls.get(s.galaxy_id, "")} for s in (below, above) if s
        ],
    }


def volunteer_figures(*, volunteer) -> dict:
    """The volunteer's own figures: votes, agreement with consensus, accuracy on gold galaxies."""
    profile = VolunteerProfile.objects.filter(user=volunteer).first()
    with_consensus = Vote.objects.filter(volunteer=volunteer, galaxy__consensus__isnull=False, was_gold=False)
    agree = (
        Q(flag="", galaxy__consensus__status="accepted")
        & Q(inclination__gte=F("galaxy__consensus__inclination") - maths.AGREE_DEG)
        & Q(inclination__lte=F("galaxy__consensus__inclination") + maths.AGREE_DEG)
    )
    agree |= Q(flag="face_on", galaxy__consensus__status="face_on")
    agree |= Q(flag__in=maths.REJECT_FLAGS, galaxy__consensus__status="rejected")
    counts = with_consensus.aggregate(n=Count("id"), agree=Count("id", filter=agree))
    totals = Vote.objects.filter(volunteer=volunteer).aggregate(
        votes=Count("id"),
        flagged=Count("id", filter=~Q(flag="")),
        median_seconds=Avg("seconds_taken"),
    )
    gold = Vote.objects.filter(volunteer=volunteer, was_gold=True, inclination__isnull=False).aggregate(
        n=Count("id"), mae=Avg(Abs(F("inclination") - F("galaxy__known_inclination")))
    )
    return {
        "votes": totals["votes"],
        "flagged": totals["flagged"],
        "mean_seconds": round(totals["median_seconds"], 0) if totals["median_seconds"] is not None else None,
        "with_consensus": counts["n"],
        "agreement": round(100.0 * counts["agree"] / counts["n"]) if counts["n"] else None,
        "gold_votes": gold["n"],
        "gold_mae": round(gold["mae"], 1) if gold["mae"] is not None else None,
        "weight": profile.weight if profile else 1.0,
        "in_words": _in_words(profile),
        "profile": profile,
    }


def _in_words(profile: VolunteerProfile | None) -> str:
    """The model's figures of this volunteer as a sentence or three ("you tend to answer 2 deg high")."""
    state = model_state()
    if profile is None or profile.sigma is None:
        return vm.describe_volunteer(bias=0.0, scale=1.0, sigma=1.0, n_numeric=0, sigma_typical=1.0)
    return vm.describe_volunteer(
        bias=profile.bias,
        scale=profile.scale,
        sigma=profile.sigma,
        n_numeric=profile.votes_counted,
        sigma_typical=state.sigma_typical,
        growth=state.growth,
    )


def leaderboard(*, limit: int = 20) -> QuerySet[VolunteerProfile]:
    """Volunteers who chose to appear, by number of votes."""
    return (
        VolunteerProfile.objects.filter(show_on_leaderboard=True, votes_count__gt=0)
        .exclude(display_name="")
        .order_by("-votes_count", "id")[:limit]
    )


def answer_hidden(*, galaxy: Galaxy, user) -> bool:
    """Whether `user` must not see what gives the galaxy's inclination away (its b/a, position angle and known value).

    Staff see everything; volunteers see it once a galaxy has retired, never for a gold galaxy (its answer scores
    them). See gold_answers_hidden for the consensus and predictions of gold galaxies.
    """
    return not getattr(user, "is_staff", False) and (galaxy.is_gold or galaxy.retired_at is None)


def gold_answers_hidden(*, galaxy: Galaxy, user) -> bool:
    """Whether `user` must not see a gold galaxy's consensus and predictions, which approach its known value."""
    return galaxy.is_gold and not getattr(user, "is_staff", False)


def galaxy_list_filtered(*, filters: dict, hide_gold_answers: bool = False) -> QuerySet[Galaxy]:
    """Galaxies matching the API's list filters, with the consensus joined (one query per page).

    With hide_gold_answers, filters on the consensus never match a gold galaxy, so they cannot probe its answer.
    """
    qs = Galaxy.objects.select_related("consensus", "survey")
    consensus_filters = ("has_consensus", "inclination_min", "inclination_max", "status")
    if hide_gold_answers and any(filters.get(name) is not None for name in consensus_filters):
        qs = qs.exclude(is_gold=True)
    if filters.get("state"):
        qs = qs.filter(state=filters["state"])
    if filters.get("source"):
        qs = qs.filter(source=filters["source"])
    if filters.get("survey"):
        qs = qs.filter(survey__slug=filters["survey"])
    if filters.get("has_consensus") is not None:
        qs = qs.filter(consensus__isnull=not filters["has_consensus"])
    if filters.get("inclination_min") is not None:
        qs = qs.filter(consensus__inclination__gte=filters["inclination_min"])
    if filters.get("inclination_max") is not None:
        qs = qs.filter(consensus__inclination__lte=filters["inclination_max"])
    ra_min, ra_max = filters.get("ra_min"), filters.get("ra_max")
    if ra_min is not None and ra_max is not None and ra_min > ra_max:
        # A box across RA = 0 (e.g. 350..10 deg) is two ranges.
        qs = qs.filter(Q(ra__gte=ra_min) | Q(ra__lte=ra_max))
    else:
        if ra_min is not None:
            qs = qs.filter(ra__gte=ra_min)
        if ra_max is not None:
            qs = qs.filter(ra__lte=ra_max)
    if filters.get("dec_min") is not None:
        qs = qs.filter(dec__gte=filters["dec_min"])
    if filters.get("dec_max") is not None:
        qs = qs.filter(dec__lte=filters["dec_max"])
    if filters.get("pgc") is not None:
        qs = qs.filter(pgc=filters["pgc"])
    search = (filters.get("search") or "").strip()
    if search:
        # "NGC 4579", "ngc4579" and "NGC4579" are the same galaxy: compare without spaces.
        compact = search.replace(" ", "")
        qs = qs.annotate(compact_name=Replace("name", Value(" "), Value("")))
        condition = Q(name__icontains=search) | Q(compact_name__icontains=compact)
        digits = compact.upper().removeprefix("PGC")
        if digits.isdigit() and len(digits) < 19:
            condition |= Q(pgc=int(digits))
        qs = qs.filter(condition)
    return qs


# ------------------------------------------------------------------------------ surveys


def surveys_list() -> QuerySet[Survey]:
    """Every survey (reference first) with `galaxies_count`, `labels_count` (consensus labels of any status) and
    `accepted_labels_count` (labels with an inclination: what evaluation and adaptation use)."""
    return Survey.objects.annotate(
        galaxies_count=Count("galaxies"),
        labels_count=Count("galaxies__consensus"),
        accepted_labels_count=Count(
            "galaxies__consensus", filter=Q(galaxies__consensus__status=ConsensusLabel.Status.ACCEPTED)
        ),
    ).order_by("-is_reference", "slug")


def survey_label_counts(*, accepted_only: bool = True) -> dict[str, int]:
    """Consensus labels per survey slug (accepted ones, with an inclination, unless `accepted_only` is False);
    surveys without labels are left out."""
    labels = ConsensusLabel.objects.all()
    if accepted_only:
        labels = labels.filter(status=ConsensusLabel.Status.ACCEPTED)
    return dict(
        labels.order_by()
        .values_list("galaxy__survey__slug")
        .annotate(n=Count("id"))
        .values_list("galaxy__survey__slug", "n")
    )


def survey_labels(*, survey: Survey, accepted_only: bool = True) -> QuerySet[ConsensusLabel]:
    """A survey's consensus labels (accepted ones unless `accepted_only` is False), with their galaxies."""
    labels = ConsensusLabel.objects.filter(galaxy__survey=survey).select_related("galaxy")
    if accepted_only:
        labels = labels.filter(status=ConsensusLabel.Status.ACCEPTED)
    return labels.order_by("galaxy_id")
