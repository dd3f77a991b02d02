"""The process-wide active ensemble: loaded once, compiled, warmed up, swapped atomically.

Every web worker and Celery worker process holds one `Ensemble` (all ACTIVE model versions). It is
immutable: a caller takes a reference once (`current()`) and uses it for the whole request, so a
request never sees half an ensemble even while another thread swaps in a new one. The set of active
versions is re-checked with one cheap query at most every GIZ_ENSEMBLE_CHECK_S seconds (and at once
in the process that activated a version); a change builds a complete new Ensemble off to the side
and replaces the reference under a lock.

Inference goes through one tf.function per input kind with a fixed signature
([None, S, S, 3] float32) that calls every member and stacks their outputs: one graph call per
batch, no retracing, no `model.predict` machinery per call. Input kinds are the colour picture ("color",
"bands": [0, 1]) and the float g, r, i FITS stamps ("flux"); a galaxy is answered by the members whose input
it has, so one with only a JPEG still gets the colour members' answer.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from inference import metrics

logger = logging.getLogger(__name__)

SCALED_CENTRE, SCALED_HALF_RANGE = 67.5, 22.5


@dataclass(frozen=True)
class Member:
    version_id: int
    name: str
    kind: str  # "regression" or "rejection"
    input_size: int
    input_mode: str
    output: str  # "degrees" or "scaled"
    # Multiplies the member's learned sigma so it covers 68% of errors (fitted on validation galaxies).
    sigma_scale: float = 1.0
    # The member's monotone calibration curve (metrics.fit_calibration), fitted on validation galaxies: with the
    # shipped members, or by the training run or adaptation that made the member (inference.services.curves).
    calibration: dict | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Group:
    """Members sharing an input (size, mode), run by one compiled function."""

    input_size: int
    input_mode: str
    members: tuple[Member, ...]
    function: object = field(repr=False, compare=False)


@dataclass(frozen=True)
class Ensemble:
    generation: tuple
    groups: tuple[Group, ...]
    loaded_at: float

    @property
    def members(self) -> tuple[Member, ...]:
        return tuple(m for g in self.groups for m in g.members)

    @property
    def model_versions(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def input_modes(self) -> set[str]:
        return {g.input_mode for g in self.groups}

    def run(self, prepared: dict[tuple[int, str], np.ndarray], *, n: int | None = None) -> dict[str, np.ndarray]:
        """Prepared images per (size, mode) -> member name -> output per image (degrees or probability)."""
        return self.run_detailed(prepared, n=n)[0]

    def run_detailed(
        self, prepared: dict[tuple[int, str], np.ndarray | tuple[np.ndarray, list[int]]], *, n: int | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Like `run`, plus each member's learned sigma in degrees (0 for members without a sigma head).

        Not every image needs every input: a (size, mode) entry may be `(images, rows)`, the prepared images of
        only those rows of the n, or be missing. A member's output is NaN for the images it did not see (a
        galaxy without FITS stamps for the flux members), and the caller combines whoever answered.
        """
        import tensorflow as tf

        if n is None:
            n = max((len(v[1]) if isinstance(v, tuple) else len(v) for v in prepared.values()), default=0)
        out: dict[str, np.ndarray] = {}
        sigmas: dict[str, np.ndarray] = {}
        for group in self.groups:
            entry = prepared.get((group.input_size, group.input_mode))
            images, rows = entry if isinstance(entry, tuple) else (entry, None)
            if images is None or len(images) == 0:
                values = np.full((0, len(group.members), 2), np.nan)
                rows = []
            else:
                values = group.function(tf.convert_to_tensor(images, dtype=tf.float32)).numpy().astype(np.float64)
            for j, member in enumerate(group.members):
                column, sigma = values[:, j, 0], values[:, j, 1]
                if member.kind == "regression" and member.output == "scaled":
                    column = SCALED_CENTRE + SCALED_HALF_RANGE * column
                if member.kind == "regression":
                    column, sigma = metrics.apply_calibration(column, sigma, member.calibration)
                if rows is not None:
                    full_column, full_sigma = np.full(n, np.nan), np.zeros(n)
                    full_column[rows], full_sigma[rows] = column, sigma
                    column, sigma = full_column, full_sigma
                out[member.name] = column
                sigmas[member.name] = sigma
        return out, sigmas


def load_keras_file(path: str):
    """Load a .keras or .h5 model for inference (no optimizer state needed)."""
    import keras

    import inference.architectures  # noqa: F401 - registers AsinhScaling, the flux members' first layer

    return keras.saving.load_model(path, compile=False)


def load_from_storage(name: str):
    """Load a model file from default storage (local path when there is one, else a temporary copy)."""
    from django.core.files.storage import default_storage

    try:
        return load_keras_file(default_storage.path(name))
    except NotImplementedError:  # remote storage (S3): copy to a temporary file first
        suffix = os.path.splitext(name)[1]
        with default_storage.open(name, "rb") as src, tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(src.read())
            tmp.flush()
            return load_keras_file(tmp.name)


def dihedral_views(images):
    """The 8 rotations and flips of a square batch (N x S x S x C) stacked as 8N images, identity first."""
    import tensorflow as tf

    views = []
    for turned in (images, tf.transpose(images, [0, 2, 1, 3])):
        views += [turned, tf.reverse(turned, axis=[2]), tf.reverse(turned, axis=[1]), tf.reverse(turned, axis=[1, 2])]
    return tf.concat(views, axis=0)


def compile_group(models: list, input_size: int, *, test_time_augmentation: bool = True):
    """One tf.function with a fixed signature running all `models`: N x M x 2 (value, sigma).

    With test-time augmentation every member sees the 8 rotations/flips of each image and answers
    their mean, so the answer cannot depend on how the image is turned. A member with a sigma head
    (N x 2 output) gives its learned sigma, combined over the views as the root mean square; other
    members give sigma 0.
    """
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, input_size, input_size, 3], tf.float32)])
    def run(images):
        n = tf.shape(images)[0]
        batch = dihedral_views(images) if test_time_augmentation else images
        views = 8 if test_time_augmentation else 1
        columns = []
        for m in models:
            out = m(batch, training=False)
            width = 2 if len(out.shape) == 2 and out.shape[-1] == 2 else 1
            out = tf.reshape(out, [views, n, width])
            value = tf.reduce_mean(out[..., 0], axis=0)
            sigma = tf.sqrt(tf.reduce_mean(tf.square(out[..., 1]), axis=0)) if width == 2 else tf.zeros_like(value)
            columns.append(tf.stack([value, sigma], axis=-1))
        return tf.stack(columns, axis=1)

    return run


def build(rows: list[dict]) -> Ensemble | None:
    """Load, compile and warm up an ensemble from ModelVersion rows (None without a regression member)."""
    if not any(r["kind"] == "regression" for r in rows):
        return None
    by_input: dict[tuple[int, str], list[tuple[Member, object]]] = {}
    for r in rows:
        member = Member(
            r["id"],
            r["name"],
            r["kind"],
            r["input_size"],
            r["input_mode"],
            r["output"],
            float((r.get("metrics") or {}).get("sigma_scale", 1.0)),
            (r.get("metrics") or {}).get("calibration"),
        )
        by_input.setdefault((member.input_size, member.input_mode), []).append((member, load_from_storage(r["file"])))
        _stats["models_loaded"] += 1
    groups = []
    for (size, mode), pairs in sorted(by_input.items()):
        function = compile_group([m for _, m in pairs], size)
        # Warm-up: traces the graph once per batch shape class; the first real request pays nothing.
        function(np.zeros((1, size, size, 3), np.float32))
        groups.append(Group(size, mode, tuple(member for member, _ in pairs), function))
    _stats["builds"] += 1
    return Ensemble(generation=_generation_of(rows), groups=tuple(groups), loaded_at=time.time())


def _generation_of(rows: list[dict]) -> tuple:
    # A new sigma scale or calibration curve on the same file (a rescored manifest) is a new ensemble too.
    def tuning(r):
        m = r.get("metrics") or {}
        return repr((m.get("sigma_scale"), m.get("calibration")))

    return tuple(sorted((r["id"], r["file"], r["output"], tuning(r)) for r in rows))


# ---------------------------------------------------------------------------------------------- the holder

_lock = threading.Lock()
_current: Ensemble | None = None
_current_generation: tuple | None = None
_checked_at = -1e18
_stats = {"models_loaded": 0, "builds": 0, "checks": 0}


def _active_rows() -> list[dict]:
    # Imported here: the ensemble is loaded by gunicorn and Celery hooks before Django's apps are ready.
    from inference.models import ModelVersion

    _stats["checks"] += 1
    return list(
        ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE)
        .order_by("kind", "name")
        .values("id", "name", "kind", "file", "input_size", "input_mode", "output", "metrics")
    )


def current(*, max_age: float | None = None) -> Ensemble | None:
    """The active ensemble of this process (None when no regression model is active).

    Re-checks the database at most every `max_age` seconds (default GIZ_ENSEMBLE_CHECK_S); loads
    models only when the set of active versions changed.
    """
    global _current, _current_generation, _checked_at
    from django.conf import settings

    if max_age is None:
        max_age = settings.GIZ_ENSEMBLE_CHECK_S
    now = time.monotonic()
    if now - _checked_at < max_age:
        return _current
    rows = _active_rows()
    generation = _generation_of(rows)
    if generation == _current_generation:
        _checked_at = now
        return _current
    with _lock:
        if generation != _current_generation:  # another thread may have built it meanwhile
            new = build(rows)  # built completely before anyone can see it
            _current, _current_generation = new, generation
            logger.info("Active ensemble: %s", new.model_versions if new else "none")
        _checked_at = now
        return _current


def invalidate() -> None:
    """Re-check the active versions on the next use (called after activating or retiring)."""
    global _checked_at
    _checked_at = -1e18


def reset() -> None:
    """Forget the loaded ensemble (tests)."""
    global _current, _current_generation, _checked_at
    with _lock:
        _current, _current_generation, _checked_at = None, None, -1e18


def stats() -> dict:
    """How often this process checked the database, loaded model files and built ensembles."""
    return dict(_stats)


def warm_up() -> Ensemble | None:
    """Load and warm the active ensemble now (process start: gunicorn post_fork, Celery worker_process_init).

    Never raises: a process must start even when the database is not migrated yet or no model is active.
    """
    try:
        ensemble = current(max_age=0)
    except Exception:
        logger.exception("Could not warm up the ensemble; the first request will load it")
        return None
    finally:
        from django.db import connection

        # A forked process must not share its parent's socket: close what warm-up opened.
        if not connection.in_atomic_block:
            connection.close()
    return ensemble
