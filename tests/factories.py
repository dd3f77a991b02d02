"""factory_boy factories for the platform's data: the one way the tests build rows."""

import io
import tempfile
from datetime import timedelta
from pathlib import Path

import factory
import numpy as np
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image, ImageDraw

from acquisition.models import AcquisitionJob, GalaxyImage
from inference.models import DiscrepancyAlarm, EnsemblePrediction, InferenceJob, ModelVersion, TrainingRun
from labeling.models import ConsensusRun, Galaxy, StandardGalaxy, Survey, Vote
from labeling.services.surveys import reference_survey

TINY_INPUT_SIZE = 32  # the inference fixtures set GIZ_MODEL_INPUT_SIZE to this


def galaxy_jpeg(
    *, inclination: float = 60.0, size: int = 64, seed: int = 0, fmt: str = "JPEG", position_angle: float = 90.0
) -> bytes:
    """A small colour image of an ellipse on a noisy sky whose axis ratio follows the inclination.

    b/a = cos i with a thickness of 0.2, so the axial-ratio baseline and the position angle can be measured; the
    major axis lies at `position_angle` (north up, east left: 90 is horizontal).
    """
    rng = np.random.default_rng(seed)
    q = max(np.cos(np.radians(inclination)), 0.2)
    base = (rng.normal(8, 3, (size, size, 3))).clip(0, 255).astype("uint8")
    image = Image.fromarray(base, "RGB")
    draw = ImageDraw.Draw(image)
    a = size * 0.38
    c = size / 2
    turn = np.radians(90.0 + position_angle)  # the major axis, counter-clockwise from +x as displayed

    def outline(semi_major: float, semi_minor: float) -> list[tuple[float, float]]:
        t = np.linspace(0, 2 * np.pi, 90, endpoint=False)
        x, y = semi_major * np.cos(t), semi_minor * np.sin(t)
        xs, ys = x * np.cos(turn) - y * np.sin(turn), x * np.sin(turn) + y * np.cos(turn)
        return [(float(c + u), float(c - v)) for u, v in zip(xs, ys, strict=True)]  # row 0 at the top

    draw.polygon(outline(a, a * q), fill=(235, 200, 150))
    draw.polygon(outline(a / 4, a * q / 3), fill=(255, 245, 220))
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 80} if fmt == "JPEG" else {}))
    return out.getvalue()


def constant_model_file(kind: str, answer: float, *, size: int = TINY_INPUT_SIZE) -> bytes:
    """A real tiny network answering `answer` (degrees, or a probability) for every image, as .keras bytes."""
    # Imported here: Keras loads only in tests that build model versions.
    from tests.inference_fixtures import constant_regression_model, constant_rejection_model, model_bytes

    if kind == ModelVersion.Kind.REJECTION:
        return model_bytes(constant_rejection_model(answer, size=size))
    return model_bytes(constant_regression_model(answer, size=size))


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"volunteer{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")

    @factory.post_generation
    def password(user, create, extracted, **kwargs):
        user.set_password(extracted or "correct-horse-battery")
        if create:
            user.save(update_fields=["password"])


class SurveyFactory(factory.django.DjangoModelFactory):
    """A HiPS survey other than the reference one (SurveyFactory(source_kind="template", url_template=...) etc.)."""

    class Meta:
        model = Survey
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"survey{n}")
    name = factory.LazyAttribute(lambda s: f"Survey {s.slug}")
    pixel_scale = 0.262
    bands = "grz"
    source_kind = Survey.SourceKind.HIPS
    hips_id = "CDS/P/DESI-Legacy-Surveys/DR10/color"
    data_release = "dr10"


class GalaxyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Galaxy
        # Saving again after the image would overwrite the colour image acquisition's receiver just set.
        skip_postgeneration_save = True

    pgc = factory.Sequence(lambda n: 1_000_000 + n)
    name = factory.LazyAttribute(lambda g: f"PGC{g.pgc}")
    ra = factory.Sequence(lambda n: (n * 7.3) % 360)
    dec = factory.Sequence(lambda n: ((n * 3.1) % 120) - 60)
    d25_arcmin = 1.2
    position_angle = 30.0
    axial_ratio = 0.5
    state = Galaxy.State.READY
    survey = factory.LazyFunction(reference_survey)

    class Params:
        # GalaxyFactory(with_image=True, image__seed=3): a ready galaxy with a stored colour JPEG.
        with_image = factory.Trait(
            image=factory.RelatedFactory("tests.factories.GalaxyImageFactory", factory_related_name="galaxy")
        )


class StandardGalaxyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StandardGalaxy

    galaxy = factory.SubFactory(GalaxyFactory, source=Galaxy.Source.SYNTHETIC)
    inclination = 60.0
    inclination_source = "synthetic truth"


class VoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vote

    volunteer = factory.SubFactory(UserFactory)
    galaxy = factory.SubFactory(GalaxyFactory)
    inclination = 60.0


class GalaxyImageFactory(factory.django.DjangoModelFactory):
    """A stored colour JPEG of a galaxy (written straight to storage, not announced to inference)."""

    class Meta:
        model = GalaxyImage

    class Params:
        inclination = 60.0
        seed = 0
        size = 64
        # The major axis lies at the galaxy's catalogue position angle (horizontal when it has none).
        drawn_at = factory.LazyAttribute(lambda o: 90.0 if o.galaxy.position_angle is None else o.galaxy.position_angle)

    galaxy = factory.SubFactory(GalaxyFactory)
    band = GalaxyImage.Band.COLOR
    format = GalaxyImage.Format.JPEG
    source = factory.LazyAttribute(lambda o: o.galaxy.source)
    survey = factory.LazyAttribute(lambda o: o.galaxy.survey)
    pixel_scale = 0.4
    width = factory.SelfAttribute("size")
    height = factory.SelfAttribute("size")
    checksum = "0" * 64
    file = factory.LazyAttribute(
        lambda o: ContentFile(
            galaxy_jpeg(
                inclination=o.inclination,
                size=o.size,
                seed=o.seed,
                position_angle=o.drawn_at,
            ),
            name=f"{o.galaxy.pgc}-color.jpg",
        )
    )


class ModelVersionFactory(factory.django.DjangoModelFactory):
    """An active tiny model version answering `answer` for every image, or storing `keras_model` when given."""

    class Meta:
        model = ModelVersion

    class Params:
        answer = 60.0
        keras_model = None

    name = factory.Sequence(lambda n: f"tiny-{n}")
    kind = ModelVersion.Kind.REGRESSION
    architecture = "tiny"
    input_size = TINY_INPUT_SIZE
    status = ModelVersion.Status.ACTIVE
    file = factory.LazyAttribute(
        lambda o: ContentFile(
            _keras_bytes(o.keras_model) if o.keras_model is not None else constant_model_file(o.kind, o.answer),
            name=f"{o.name}.keras",
        )
    )


def _keras_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes()


class EnsemblePredictionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EnsemblePrediction

    galaxy = factory.SubFactory(GalaxyFactory)
    median = 60.0
    mean = factory.SelfAttribute("median")
    spread = 1.0
    n_models = 3
    ensemble_key = factory.Sequence(lambda n: f"test-{n}")


class DiscrepancyAlarmFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DiscrepancyAlarm

    galaxy = factory.SubFactory(GalaxyFactory)
    kind = DiscrepancyAlarm.Kind.ENSEMBLE_SPREAD


def _long_ago():
    return timezone.now() - timedelta(days=1)


class BackgroundRunFactory(factory.django.DjangoModelFactory):
    """A live background run, queued. Traits: `running` (its worker beat just now) and `stale` (its worker
    stopped beating a day ago, past every takeover threshold)."""

    class Meta:
        abstract = True
        skip_postgeneration_save = True

    class Params:
        running = factory.Trait(
            status="running",
            started_at=factory.LazyFunction(timezone.now),
            heartbeat_at=factory.LazyFunction(timezone.now),
        )
        stale = factory.Trait(
            status="running", started_at=factory.LazyFunction(_long_ago), heartbeat_at=factory.LazyFunction(_long_ago)
        )

    @factory.post_generation
    def backdate(run, create, extracted, **kwargs):
        # created_at is set on insert; a stale run was created as long ago as it last beat.
        if create and run.heartbeat_at is not None and run.heartbeat_at < timezone.now() - timedelta(hours=1):
            type(run).objects.filter(pk=run.pk).update(created_at=run.heartbeat_at)
            run.created_at = run.heartbeat_at


class TrainingRunFactory(BackgroundRunFactory):
    class Meta:
        model = TrainingRun

    trigger = TrainingRun.Trigger.MANUAL


class InferenceJobFactory(BackgroundRunFactory):
    """A job over a list of PGC numbers (`pgcs`)."""

    class Meta:
        model = InferenceJob

    class Params:
        pgcs = ()

    kind = InferenceJob.Kind.PGC_LIST
    params = factory.LazyAttribute(lambda job: {"pgcs": list(job.pgcs)})
    total = factory.LazyAttribute(lambda job: len(job.pgcs))


class AcquisitionJobFactory(BackgroundRunFactory):
    class Meta:
        model = AcquisitionJob


class ConsensusRunFactory(BackgroundRunFactory):
    """A consensus recomputation in progress (live), its worker's heartbeat just now."""

    class Meta:
        model = ConsensusRun

    running = True
