"""A new survey end to end: tested in advance on volunteer labels, marked, adapted, and measured on held-out galaxies.

    nice -n 10 .venv/bin/python -m bench.survey_stamps        # renders the survey once (cached in var/)
    nice -n 10 .venv/bin/python -m bench.bench_surveys        # then this (about an hour on 2 shared cores)
    .venv/bin/python -m bench.bench_surveys --evaluation-only --evaluation-setup --threads 2   # the evaluation alone

The survey is simulated with the second galaxy source (GalSim, acquisition/galsim_renderer.py) in a look the
shipped ensemble was not trained on (bench/survey_stamps.py BENCH_LOOK: 0.9"/px pixels, 1.8-2.8" seeing, a
harder, redder stretch with sky left in). Against a fresh PostgreSQL database (giz_bench_h13b_surveys) it
1. activates the shipped ensemble, creates the survey and --labelled galaxies with stored JPEG stamps;
2. lets simulated volunteers (bench/volunteer_sim.py, 3 votes a galaxy) vote through the real services
   (assignment_next + vote_submit) until every galaxy has its consensus label; the label announcements start the
   survey's automatic evaluation at GIZ_SURVEY_EVAL_MIN_LABELS and, once it is marked, the adaptation run: the
   rows those triggers create are executed here, as the workers would (the broker is an in-memory stand-in);
3. times the evaluation of the labelled galaxies cold (no stored predictions) and warm;
4. executes the adaptation run (fine-tuning the shipped members from their weights, --minutes-per-member each);
5. measures before/after on --held-out further galaxies of the survey (true inclinations) and on the shipped
   GalSim SDSS-look test set (1,000, seed 203), and trains an ensemble on the survey from the start (random
   weights, the same data and time per member) for comparison.
TensorFlow runs on one thread. Prints a Markdown block and writes it to --out.
--evaluation-only times the evaluation again on the database a run left; with --evaluation-setup it first makes one
with only what the evaluation reads (1,000 stamps are enough: `survey_stamps(1000)` renders just those).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import survey_stamps  # noqa: E402

SLUG = "bench-ground"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="giz_bench_h13b_surveys")
    parser.add_argument(
        "--labels-only",
        action="store_true",
        help="steps 1-2 only: a fresh database, the galaxies and the volunteers' votes (then --reuse-labels)",
    )
    parser.add_argument(
        "--reuse-labels",
        action="store_true",
        help="skip steps 1-2: reuse the galaxies and consensus labels a run (or --labels-only) left in --database; "
        "the shipped ensemble is made active again and the adaptation the labels started (or a new one) is run",
    )
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--labelled", type=int, default=1000, help="galaxies volunteers label")
    parser.add_argument("--held-out", type=int, default=1000)
    parser.add_argument("--volunteers", type=int, default=60)
    parser.add_argument("--adapt-min-labels", type=int, default=900, help="GIZ_SURVEY_ADAPT_MIN_LABELS")
    parser.add_argument("--eval-min-labels", type=int, default=200, help="GIZ_SURVEY_EVAL_MIN_LABELS")
    parser.add_argument("--minutes-per-member", type=float, default=4.0)
    parser.add_argument("--skip-scratch", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads")
    parser.add_argument("--profile", default="standard", help="the adaptation's profile (tiny: a dry run)")
    parser.add_argument("--epochs", type=int, default=0, help="the adaptation's most epochs (0: the profile's)")
    parser.add_argument("--reference-n", type=int, default=1000, help="GalSim SDSS-look reference galaxies")
    parser.add_argument(
        "--held-out-only",
        action="store_true",
        help="measure the held-out galaxies (and the from-scratch ensemble) on the database a run left after its "
        "adaptation",
    )
    parser.add_argument("--scratch-members", type=int, default=3, help="members of the from-scratch ensemble")
    parser.add_argument(
        "--evaluation-only",
        action="store_true",
        help="time the evaluation again (cold, then warm; wall and CPU) on the database a full run left",
    )
    parser.add_argument(
        "--evaluation-setup",
        action="store_true",
        help="with --evaluation-only: first make a fresh database holding just the survey, its --labelled galaxies' "
        "stamps and accepted consensus labels (the truth plus 2.5 deg of scatter, no volunteers), so the evaluation "
        "can be timed without a full run",
    )
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "surveys.md"))
    return parser.parse_args()


ARGS = parse_args()
LOOK = survey_stamps.BENCH_LOOK
os.environ["DATABASE_URL"] = f"{ARGS.pg}/{ARGS.database}"
os.environ["DJANGO_SETTINGS_MODULE"] = "giz_site.settings.local"
os.environ["GIZ_DATA_DIR"] = str(REPO / "var" / "bench_surveys" / "site")
os.environ["CELERY_BROKER_URL"] = "memory://"  # the bench executes the rows the triggers create, as workers would
os.environ["GIZ_VOTES_MAX"] = "3"  # 3 votes a galaxy, then its consensus label
os.environ["GIZ_RETIRE_SD"] = "0"  # never earlier
os.environ["GIZ_SURVEY_ADAPT_MIN_LABELS"] = str(ARGS.adapt_min_labels)
os.environ["GIZ_SURVEY_EVAL_MIN_LABELS"] = str(ARGS.eval_min_labels)
os.environ["GIZ_TRAINING_PROFILE"] = "standard"
os.environ["GIZ_LOG_LEVEL"] = "WARNING"
# The survey-look hook: how this survey's synthetic galaxies are rendered for its adaptation.
os.environ["GIZ_SURVEY_LOOKS"] = json.dumps(
    {SLUG: {k: getattr(LOOK, k) for k in LOOK.__dataclass_fields__ if k != "pixel_scale"}}
)


def fresh_database() -> None:
    for sql in (f"DROP DATABASE IF EXISTS {ARGS.database}", f"CREATE DATABASE {ARGS.database}"):
        subprocess.run(["psql", f"{ARGS.pg}/postgres", "-q", "-c", sql], check=True, capture_output=True)


def jpeg(stamp: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(stamp).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def prepared(stamps: np.ndarray, size: int = 128) -> np.ndarray:
    """Stamps as the site prepares a stored JPEG: decoded, rotated by the measured position angle, resized."""
    from inference import imaging
    from inference.services.predictions import model_input

    out = []
    for stamp in stamps:
        decoded, angle = model_input(jpeg(stamp), size=size, position_angle=None)
        out.append(np.round(imaging.prepare_for_model(decoded, size=size, position_angle=angle) * 255).astype(np.uint8))
    return np.stack(out)


def between(shown: list[tuple[float, int]], value: float) -> tuple[int, int]:
    """The ids of the two shown standards a vote of `value` deg is placed between (as the page does)."""
    below = [s for s in shown if s[0] <= value]
    above = [s for s in shown if s[0] > value]
    if not above:
        return below[-2][1], below[-1][1]
    if not below:
        return above[0][1], above[1][1]
    return below[-1][1], above[0][1]


def rms(predicted, true) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(true)) ** 2)))


def create_survey(stamps: np.ndarray):
    """The survey and its galaxies with their stored JPEG stamps (pgc 9,000,000 + index)."""
    from django.core.files.base import ContentFile
    from tqdm import tqdm

    from acquisition.models import GalaxyImage
    from labeling.models import Galaxy, Survey

    survey = Survey.objects.create(
        slug=SLUG,
        name="Simulated ground-based survey",
        pixel_scale=LOOK.pixel_scale,
        bands="gri",
        source_kind=Survey.SourceKind.TEMPLATE,
        url_template="http://127.0.0.1:9/cutout?ra={ra}&dec={dec}&size={size}",
        data_release="sim1",
    )
    for i in tqdm(range(len(stamps)), desc="galaxies", unit="galaxy", file=sys.stderr):
        galaxy = Galaxy.objects.create(
            pgc=9_000_000 + i, ra=(i * 0.37) % 360, dec=-30.0 + (i % 600) * 0.1, survey=survey, state="ready"
        )
        GalaxyImage.objects.create(
            galaxy=galaxy,
            survey=survey,
            band=GalaxyImage.Band.COLOR,
            format=GalaxyImage.Format.JPEG,
            source=galaxy.source,
            pixel_scale=LOOK.pixel_scale,
            width=stamps.shape[2],
            height=stamps.shape[1],
            checksum="0" * 64,
            file=ContentFile(jpeg(stamps[i]), name=f"{galaxy.pgc}-color.jpg"),
        )
    return survey


def evaluation_setup() -> None:
    """A fresh database with the shipped ensemble, the survey and --labelled galaxies with accepted consensus
    labels written directly (the truth plus 2.5 deg of scatter, about what 3 simulated votes give)."""
    stamps, truth, _ = survey_stamps.survey_stamps(ARGS.labelled, processes=1)
    fresh_database()
    import django

    django.setup()
    from django.core.management import call_command

    from labeling.models import ConsensusLabel

    call_command("migrate", verbosity=0)
    call_command("activate_shipped", stdout=io.StringIO())
    survey = create_survey(stamps)
    rng = np.random.default_rng(13)
    labels = np.clip(truth + rng.normal(0.0, 2.5, len(truth)), 45.0, 90.0)
    ConsensusLabel.objects.bulk_create(
        ConsensusLabel(galaxy=galaxy, status="accepted", inclination=float(labels[galaxy.pgc - 9_000_000]), n_votes=3)
        for galaxy in survey.galaxies.all()
    )


def evaluation_only() -> None:
    """The survey's evaluation timed again on the database a full run (or --evaluation-setup) left: cold (its
    stored predictions deleted first) and warm, wall and CPU seconds of this process (TensorFlow on --threads),
    with the ensemble loaded beforehand as in a worker."""
    import django

    django.setup()
    from inference import ensemble, services
    from inference.models import EnsemblePrediction, Prediction
    from labeling.models import Survey

    ensemble.current(max_age=0)
    survey = Survey.objects.get(slug=SLUG)
    Prediction.objects.filter(galaxy__survey=survey).delete()
    EnsemblePrediction.objects.filter(galaxy__survey=survey).delete()
    for name in ("cold", "warm"):
        evaluation = services.survey_evaluation_request(survey=survey, queue=False)
        wall, cpu = time.time(), time.process_time()
        evaluation = services.survey_evaluation_run(evaluation_id=evaluation.pk)
        wall, cpu = time.time() - wall, time.process_time() - cpu
        load = os.getloadavg()
        print(
            f"| evaluation of {evaluation.n_labels} accepted / {evaluation.total} labels, {name} "
            f"({evaluation.figures['sources']}) | wall {wall:.1f} s, CPU {cpu:.1f} s; load {load[0]:.1f} |"
        )


def held_out_only() -> None:
    """Steps 4-5 on the database a run left once its adaptation finished: the queued evaluations of the new
    ensemble, before/after on the held-out galaxies and the reference set, and the from-scratch ensemble."""
    import django

    django.setup()
    from inference import services
    from inference.models import ModelVersion, SurveyEvaluation, TrainingRun
    from labeling.models import Survey

    survey = Survey.objects.get(slug=SLUG)
    run = TrainingRun.objects.get(trigger="adaptation", survey=survey, status="succeeded")
    for evaluation in SurveyEvaluation.objects.filter(training_run=run, status="queued"):
        services.survey_evaluation_run(evaluation_id=evaluation.pk)
    stamps, truth, _ = survey_stamps.survey_stamps(survey_stamps.N_STAMPS)
    shipped_versions = list(ModelVersion.objects.filter(name__startswith="shipped-").order_by("name"))
    adapted_versions = list(ModelVersion.objects.filter(training_run=run).order_by("name"))
    measure(run, survey, shipped_versions, adapted_versions, stamps, truth, time.time())


def measure(run, survey, shipped_versions, adapted_versions, stamps, truth, started) -> dict:
    """Before/after on the held-out galaxies and the reference set, and the from-scratch ensemble; printed."""
    from inference import shipped
    from inference import training_sets as synthetic_data
    from inference.ensemble import load_from_storage
    from inference.services.curves import calibrations_of, fitted_curves, median_answers, predictor

    n = ARGS.labelled
    held_x = prepared(stamps[n : n + ARGS.held_out])
    held_y = truth[n : n + ARGS.held_out].astype(np.float64)
    n_reference, seed_reference = shipped.TEST_SETS["galsim"]
    reference = synthetic_data.cached_source_set(
        shipped.CACHE_DIR, "galsim", min(ARGS.reference_n, n_reference), seed=seed_reference
    )
    before = predictor([load_from_storage(v.file.name) for v in shipped_versions], 128)
    after = predictor([load_from_storage(v.file.name) for v in adapted_versions], 128)
    # Both ensembles as the site answers: each member through its calibration curve (an adapted member's own, or
    # the one it kept from its shipped member).
    curves, adapted_curves = calibrations_of(shipped_versions), calibrations_of(adapted_versions)
    results = {
        "survey_before": rms(median_answers(before, held_x, curves), held_y),
        "survey_after": rms(median_answers(after, held_x, adapted_curves), held_y),
        "reference_before": rms(median_answers(before, reference.images, curves), reference.inclination),
        "reference_after": rms(median_answers(after, reference.images, adapted_curves), reference.inclination),
        "held_out": len(held_y),
        "reference_n": len(reference),
    }
    print(json.dumps(results), flush=True)
    if not ARGS.skip_scratch:
        from inference import keras_training
        from inference.architectures import build_sigma_regression_model
        from inference.services.adaptation import adaptation_data, config_for

        # The adaptation's own mix (labels, survey look, reference replay; rendered already, so from the cache).
        data = adaptation_data(run, survey, 128, config_for(run))
        train, val = data.train, data.val
        scratch_started = time.time()
        scratch = []
        for i, architecture in enumerate(["vgg_a", "vgg_b", "vgg_c"][: ARGS.scratch_members]):
            model = build_sigma_regression_model(architecture, name=f"scratch_{i}")
            fit = keras_training.fine_tune_member(
                model,
                train=train,
                val=val,
                epochs=200,
                learning_rate=2e-3,
                patience=200,
                seed=1000 + i,
                max_seconds=ARGS.minutes_per_member * 60,
            )
            print(f"scratch member {architecture}: {fit.epochs} epochs in {fit.seconds:.0f} s", flush=True)
            scratch.append(model)
        results["scratch_seconds"] = time.time() - scratch_started
        # Through curves of its own, fitted on the images the adapted members' curves are fitted on.
        held = slice(data.mix["guard_reference_labels"], None)
        scratch_curves = fitted_curves(
            scratch,
            128,
            np.concatenate([val.images, data.guard.images[held]]),
            np.concatenate([val.target, data.guard.target[held]]),
        )
        results["survey_scratch"] = rms(median_answers(predictor(scratch, 128), held_x, scratch_curves), held_y)
        results["scratch_members"] = len(scratch)
    load = os.getloadavg()
    results["load"] = [round(x, 1) for x in load]
    results["wall_minutes"] = (time.time() - started) / 60
    print(json.dumps(results, indent=1), flush=True)
    return results


def label(stamps: np.ndarray, truth: np.ndarray):
    """Steps 1-2 on the fresh database: the survey, its galaxies with stored stamps, and the simulated volunteers
    voting through the services until every galaxy has its consensus label (the triggers' evaluations executed as
    the workers would). Returns (survey, seconds of voting, {"evaluations": [(id, seconds)]})."""
    from django.contrib.auth import get_user_model
    from tqdm import tqdm

    from bench import volunteer_sim as sim
    from inference import services
    from inference.models import SurveyEvaluation
    from labeling import services as labeling_services
    from labeling.models import ConsensusLabel, Galaxy, StandardGalaxy

    n = ARGS.labelled
    survey = create_survey(stamps[:n])

    # ---------------------------------------------------------------- volunteers vote through the services
    rng = np.random.default_rng(13)
    pop = sim.population(ARGS.volunteers, rng)
    users = [get_user_model().objects.create_user(username=f"sim{k}") for k in range(ARGS.volunteers)]
    # Standards at every whole degree (not served for labelling: state "new"), so votes cite their neighbours.
    for degree in range(45, 91):
        galaxy = Galaxy.objects.create(
            pgc=8_000_000 + degree, ra=1.0, dec=1.0, state="new", source="synthetic", color_image="standards/x.jpg"
        )
        StandardGalaxy.objects.create(galaxy=galaxy, inclination=degree, inclination_source="bench")
    standard_degree = dict(StandardGalaxy.objects.values_list("id", "inclination"))
    weights = pop.activity / pop.activity.sum()
    sky = sim.Sky(truth=truth[:n].astype(np.float64), kind=np.zeros(n, np.int8), gold=np.zeros(n, bool))
    timings = {"evaluations": []}
    votes_started, idle = time.time(), 0
    bar = tqdm(total=3 * n, desc="votes", unit="vote", file=sys.stderr)
    while ConsensusLabel.objects.filter(galaxy__survey=survey).count() < n and idle < 500:
        k = int(rng.choice(len(users), p=weights))
        assignment = labeling_services.assignment_next(volunteer=users[k])
        if assignment is None:
            idle += 1
            continue
        idle = 0
        index = assignment.galaxy.pgc - 9_000_000
        value, category, not_sure = sim.cast(pop, sky, np.array([index]), np.array([k]), rng)
        flag = {sim.ACCEPTED: "", sim.FACE_ON: "face_on", sim.REJECTED: "bad_image"}[int(category[0])]
        left = right = None
        if not flag:
            shown = sorted((standard_degree[sid], sid) for sid in assignment.standard_ids)
            left, right = between(shown, float(value[0]))
        labeling_services.vote_submit(
            volunteer=users[k],
            token=assignment.token,
            inclination=None if flag else float(value[0]),
            flag=flag,
            not_sure=bool(not_sure[0]),
            note="",
            left_standard_id=left,
            right_standard_id=right,
            seconds_taken=60.0,
        )
        bar.update(1)
        # What the inference workers would pick up: the automatic evaluation at the label threshold.
        for evaluation in SurveyEvaluation.objects.filter(status="queued"):
            started = time.time()
            services.survey_evaluation_run(evaluation_id=evaluation.pk)
            timings["evaluations"].append((evaluation.pk, time.time() - started))
    bar.close()
    votes_seconds = time.time() - votes_started
    return survey, votes_seconds, timings


def main() -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(ARGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(ARGS.threads)
    if ARGS.evaluation_only:
        if ARGS.evaluation_setup:
            evaluation_setup()
        return evaluation_only()
    if ARGS.held_out_only:
        return held_out_only()
    wall0, cpu0 = time.time(), time.process_time()
    stamps, truth, _ = survey_stamps.survey_stamps(survey_stamps.N_STAMPS)  # the cached set; labelled, then held out
    if ARGS.labelled + ARGS.held_out > len(stamps):
        raise SystemExit(f"only {len(stamps)} survey stamps are rendered")
    stamps, truth = stamps[: ARGS.labelled + ARGS.held_out], truth[: ARGS.labelled + ARGS.held_out]
    if not ARGS.reuse_labels:
        fresh_database()

    import django

    django.setup()
    from django.core.management import call_command
    from tqdm import tqdm

    from inference import services
    from inference.models import EnsemblePrediction, ModelVersion, Prediction, SurveyEvaluation, TrainingRun
    from labeling.models import ConsensusLabel, Survey, Vote

    call_command("migrate", verbosity=0)
    # Again on a reused database: a previous run's adaptation may have been promoted; this one starts from shipped.
    call_command("activate_shipped", stdout=io.StringIO())
    shipped_versions = list(ModelVersion.objects.filter(status="active", kind="regression").order_by("name"))
    n = ARGS.labelled
    truth_by_pgc = {9_000_000 + i: float(truth[i]) for i in range(n)}
    labels_file = REPO / "var" / "bench_surveys" / f"labels-{ARGS.database}.json"
    if ARGS.reuse_labels:
        survey = Survey.objects.get(slug=SLUG)
        timings = json.loads(labels_file.read_text())
        votes_seconds = timings["votes_seconds"]
    else:
        survey, votes_seconds, timings = label(stamps, truth)
        labels_file.write_text(json.dumps({"votes_seconds": votes_seconds, **timings}))
        if ARGS.labels_only:
            print(f"labels: {votes_seconds:.0f} s of voting; rerun with --reuse-labels", flush=True)
            return
    labels = ConsensusLabel.objects.filter(galaxy__survey=survey).select_related("galaxy")
    accepted = [lab for lab in labels if lab.status == "accepted"]
    label_error = np.array([lab.inclination - truth_by_pgc[lab.galaxy.pgc] for lab in accepted])
    vote_error = np.array(
        [
            v.inclination - truth_by_pgc[v.galaxy.pgc]
            for v in Vote.objects.filter(galaxy__survey=survey, inclination__isnull=False).select_related("galaxy")
        ]
    )
    automatic = SurveyEvaluation.objects.filter(survey=survey, trigger="labels").first()
    survey.refresh_from_db()

    # ---------------------------------------------------------------- evaluation of the labels, cold and warm
    Prediction.objects.filter(galaxy__survey=survey).delete()
    EnsemblePrediction.objects.filter(galaxy__survey=survey).delete()
    cold = services.survey_evaluation_request(survey=survey, queue=False)
    started = time.time()
    cold = services.survey_evaluation_run(evaluation_id=cold.pk)
    cold_seconds = time.time() - started
    warm = services.survey_evaluation_request(survey=survey, queue=False)
    started = time.time()
    warm = services.survey_evaluation_run(evaluation_id=warm.pk)
    warm_seconds = time.time() - started
    print(json.dumps({"cold_s": cold_seconds, "warm_s": warm_seconds, "cold_rms": cold.rms}), flush=True)

    # ---------------------------------------------------------------- the adaptation the labels started
    # The run the labels started (on a reused database: still queued only the first time it is reused).
    run = TrainingRun.objects.filter(trigger="adaptation", survey=survey, status="queued").first()
    auto_adaptation = run is not None and run.config.get("survey") == SLUG and "bench" not in run.config
    if run is None:  # not started automatically (the survey was not marked): staff would start it
        run = services.survey_adaptation_create(survey=survey, config={"bench": "reuse-labels"}, queue=False)
    TrainingRun.objects.filter(pk=run.pk).update(
        config={
            **run.config,
            "profile": ARGS.profile,
            "minutes_per_member": ARGS.minutes_per_member,
            **({"epochs": ARGS.epochs} if ARGS.epochs else {}),
        }
    )
    started = time.time()
    bar = tqdm(total=1000, desc=f"adaptation run {run.pk}", unit="‰", file=sys.stderr)

    def follow(fraction: float, message: str) -> None:
        bar.update(max(0, round(fraction * 1000) - bar.n))
        bar.set_postfix_str(message[:50])

    run = services.training_run_execute(run_id=run.pk, progress_callback=follow)
    bar.close()
    adapt_seconds = time.time() - started
    if run.status != "succeeded":
        raise SystemExit(f"adaptation failed: {run.error}")
    after_evaluations = list(SurveyEvaluation.objects.filter(training_run=run, status="queued"))
    for evaluation in after_evaluations:
        services.survey_evaluation_run(evaluation_id=evaluation.pk)
    adapted_versions = list(ModelVersion.objects.filter(training_run=run).order_by("name"))

    # ---------------------------------------------------------------- held-out galaxies: before, after, scratch
    results = measure(run, survey, shipped_versions, adapted_versions, stamps, truth, wall0)
    scratch_seconds = results.get("scratch_seconds")
    reference_n = results["reference_n"]

    # ---------------------------------------------------------------- report
    load = os.getloadavg()
    promotion = run.metrics["promotion"]
    lines = [
        "### Latest run (shared machine)",
        "",
        f"- Command: `nice -n 10 .venv/bin/python -m bench.bench_surveys {' '.join(sys.argv[1:])}`"
        + (f" (the labels of a `--labels-only` run: {votes_seconds:.0f} s of voting)" if ARGS.reuse_labels else ""),
        f"- Machine: {os.cpu_count()} CPUs; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (shared, not quiet); "
        f"wall {(time.time() - wall0) / 60:.1f} min, "
        f"CPU {(time.process_time() - cpu0) / 60:.1f} min of this process (TensorFlow on one thread)",
        f"- Survey look: {LOOK}; GalSim source; {n} labelled galaxies, {ARGS.held_out} held out",
        f"- Volunteers: {ARGS.volunteers} simulated (bench/volunteer_sim.py), "
        f"{len(vote_error)} inclination votes through "
        f"assignment_next + vote_submit in {votes_seconds:.0f} s; single-vote scatter about the truth "
        f"{np.std(vote_error):.2f} deg (RMS {rms(vote_error, 0):.2f}); {len(accepted)} accepted consensus labels of "
        f"{labels.count()} (RMS about the truth {rms(label_error, 0):.2f} deg)",
        "- Automatic evaluation at the threshold: "
        + (
            f"evaluation {automatic.pk} on {automatic.n_labels} labels, RMS {automatic.rms:.2f} deg, "
            f"verdict: {automatic.verdict}"
            if automatic
            else "none"
        ),
        f"- Adaptation run {run.pk}: started {'automatically by the labels' if auto_adaptation else 'by the bench'}, "
        f"{adapt_seconds / 60:.1f} min (render + {ARGS.minutes_per_member:g} min per member + gate); "
        f"{promotion['reason']}",
        f"- Fine-tuning mix and selection: {json.dumps(run.metrics.get('train'))}; "
        f"{json.dumps(run.metrics.get('fine_tuning'))}; per member (epochs trained, kept, refused by the guard): "
        + "; ".join(
            f"{v.name} {v.metrics['fit']['epochs']}, {(v.metrics['fit'].get('selection') or {}).get('epoch')}, "
            f"{(v.metrics['fit'].get('selection') or {}).get('refused')}"
            for v in adapted_versions
        ),
        "",
        "| measurement | value |",
        "|---|---|",
        f"| evaluation of {cold.n_labels} accepted / {cold.total} labels, cold (every galaxy predicted now) | "
        f"{cold_seconds:.1f} s |",
        # Evaluations store no predictions any more, so the second one predicts again (it reuses stored ones
        # only for images predicted when acquired, which the bench's galaxies were not).
        f"| same, again (nothing stored to reuse) | {warm_seconds:.1f} s |",
        f"| RMS on the labels (evaluation, vs consensus) | {cold.rms:.2f} deg, bias {cold.bias:+.2f}, "
        f"{100 * cold.outlier_rate:.1f}% > 10 deg |",
        "",
        "Held-out galaxies (true inclinations), the ensemble median with 8-fold TTA as on the site:",
        "",
        "| set | n | shipped ensemble (before) | adapted (after) | change | trained on the survey from the start |",
        "|---|---|---|---|---|---|",
        f"| {survey.name} | {results['held_out']} | {results['survey_before']:.2f} | {results['survey_after']:.2f} | "
        f"{100 * (results['survey_after'] / results['survey_before'] - 1):+.1f}% | "
        + (f"{results['survey_scratch']:.2f} ({scratch_seconds / 60:.1f} min)" if "survey_scratch" in results else "-")
        + " |",
        f"| reference: GalSim SDSS look (shipped test set, seed 203) | {reference_n} | "
        f"{results['reference_before']:.2f} | {results['reference_after']:.2f} | "
        f"{results['reference_after'] - results['reference_before']:+.2f} deg | - |",
        "",
        "Promotion gate numbers (RMS deg, before -> after): "
        + "; ".join(f"{k} {v['before']:.2f} -> {v['after']:.2f}" for k, v in promotion["numbers"].items()),
    ]
    text = "\n".join(lines)
    print(text)
    Path(ARGS.out).parent.mkdir(parents=True, exist_ok=True)
    Path(ARGS.out).write_text(text + "\n")
    print(json.dumps({"results": results, "cold_s": cold_seconds, "warm_s": warm_seconds}, indent=1))


if __name__ == "__main__":
    main()
