"""Training one ensemble member with tf.data, inclination-preserving augmentation and early stopping.

Django-free: the Django side (inference.services / inference.train_runs) gathers the arrays, calls
`fit_member`, and stores the model and its metrics.

Augmentation keeps the inclination: flips, rotation by 180 deg, small rotations (the position
angle's own uncertainty), small shifts, noise, brightness and contrast. Never independent x/y
scaling, which changes the apparent axis ratio and so the label.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from inference import metrics, survey_look


@dataclass
class Split:
    images: np.ndarray  # uint8 or float32 N x S x S x 3
    target: np.ndarray  # float32: degrees (regression) or 0/1 (rejection)
    weights: np.ndarray | None = None


@dataclass
class FitResult:
    history: dict[str, list[float]] = field(default_factory=dict)
    epochs: int = 0
    images_per_second: float = 0.0
    seconds: float = 0.0
    # fine_tune_member with a guard set: which epoch was kept and why (0 = the starting weights).
    selection: dict | None = None


def split_by_key(keys, *, test_fraction: float = 0.1, val_fraction: float = 0.1) -> np.ndarray:
    """'train' / 'val' / 'test' per item from a stable hash of its galaxy key.

    Splitting by galaxy (not by image) keeps every image of a galaxy on one side; the hash makes
    the test set fixed across trainings, so versions can be compared on the same galaxies.
    """
    out = []
    for key in keys:
        h = (int(key) * 2654435761) % 1000 / 1000.0
        out.append("test" if h < test_fraction else "val" if h < test_fraction + val_fraction else "train")
    return np.array(out)


def _augment_fn(seed: int, *, max_rotation_deg: float = 8.0, max_shift: float = 0.04, flux: bool = False):
    rotate = keras.layers.RandomRotation(max_rotation_deg / 360.0, fill_mode="reflect", seed=seed)
    shift = keras.layers.RandomTranslation(max_shift, max_shift, fill_mode="reflect", seed=seed + 1)

    def augment(x, y, w):
        n = tf.shape(x)[0]
        # Flips and a half turn map the ellipse onto itself (major axis stays horizontal).
        flip_lr = tf.random.uniform([n, 1, 1, 1]) < 0.5
        x = tf.where(flip_lr, tf.reverse(x, axis=[2]), x)
        flip_ud = tf.random.uniform([n, 1, 1, 1]) < 0.5
        x = tf.where(flip_ud, tf.reverse(x, axis=[1]), x)
        x = rotate(x, training=True)
        x = shift(x, training=True)
        if flux:
            # Sky-noise units, unclipped: a brighter or fainter galaxy, and a shallower image (more noise).
            gain = tf.exp(tf.random.uniform([n, 1, 1, 1], -0.4, 0.4))
            noise = tf.random.uniform([n, 1, 1, 1], 0.0, 0.5)
            return x * gain + tf.random.normal(tf.shape(x)) * noise, y, w
        contrast = tf.random.uniform([n, 1, 1, 1], 0.8, 1.25)
        brightness = tf.random.uniform([n, 1, 1, 1], -0.05, 0.05)
        x = x * contrast + brightness
        noise = tf.random.uniform([n, 1, 1, 1], 0.0, 0.03)
        x = x + tf.random.normal(tf.shape(x)) * noise
        return tf.clip_by_value(x, 0.0, 1.0), y, w

    return augment


def make_dataset(
    split: Split, *, batch_size: int, augment: bool, shuffle: bool, seed: int = 0, flux: bool = False
) -> tf.data.Dataset:
    """A tf.data pipeline from in-memory arrays; uint8 images are scaled to [0, 1] per batch. `flux`: float
    images in sky-noise units (imaging.normalise_flux), augmented without clipping."""
    weights = split.weights if split.weights is not None else np.ones(len(split.target), np.float32)
    ds = tf.data.Dataset.from_tensor_slices((split.images, split.target.astype(np.float32), weights))
    if shuffle:
        ds = ds.shuffle(min(len(split.target), 10_000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    scale = 1 / 255.0 if split.images.dtype == np.uint8 else 1.0

    def to_float(x, y, w):
        return tf.cast(x, tf.float32) * scale, y, w

    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if augment:
        ds = ds.map(_augment_fn(seed, flux=flux), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


class _Progress(keras.callbacks.Callback):
    def __init__(self, on_epoch: Callable[[int, int, dict], None] | None, epochs: int, batches: int):
        super().__init__()
        self.on_epoch = on_epoch
        self.epochs = epochs
        self.batches = batches
        self.epoch_seconds: list[float] = []
        self.epoch_images: list[int] = []
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._t0)
        if self.on_epoch:
            self.on_epoch(epoch + 1, self.epochs, dict(logs or {}))


class _Schedule(keras.callbacks.Callback):
    """Cosine learning-rate decay over whichever runs out first: the epochs or the time budget.

    Stops after the epoch that crosses `max_seconds` (EarlyStopping still restores the best weights),
    so a run sized for a few minutes on two cores ends with a decayed, settled learning rate.
    """

    def __init__(self, learning_rate: float, epochs: int, max_seconds: float | None):
        super().__init__()
        self.base = learning_rate
        self.epochs = epochs
        self.max_seconds = max_seconds
        self._start = time.perf_counter()

    def _fraction(self, epoch: int) -> float:
        fraction = epoch / max(self.epochs, 1)
        if self.max_seconds:
            fraction = max(fraction, (time.perf_counter() - self._start) / self.max_seconds)
        return min(fraction, 1.0)

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * self._fraction(epoch))))
        self.model.optimizer.learning_rate.assign(lr)

    def on_epoch_end(self, epoch, logs=None):
        if self.max_seconds is not None and time.perf_counter() - self._start > self.max_seconds:
            self.model.stop_training = True


def answer_rms(model: keras.Model, split: Split, *, batch_size: int = 64) -> float:
    """RMS (deg) of a member's answers, clipped to 45-90 as the ensemble clips them, on a split (no TTA)."""
    if len(split.target) == 0:
        return float("nan")
    dataset = make_dataset(Split(split.images, split.target), batch_size=batch_size, augment=False, shuffle=False)
    answers = np.asarray(model.predict(dataset, verbose=0)).reshape(len(split.target), -1)[:, 0]
    return float(np.sqrt(np.mean((np.clip(answers, 45.0, 90.0) - split.target) ** 2)))


class _GuardedSelection(keras.callbacks.Callback):
    """Keep the epoch best on the data being adapted to (RMS on `val`) among the epochs whose RMS on `guard` (the
    data that must not be forgotten) is at most `tolerance` deg above the starting weights'.

    The starting weights are candidate "epoch 0": a fine-tune that buys its gain only by forgetting the guard set
    gives the member back unchanged, instead of the val-loss-best epoch that early stopping alone would keep.
    Stops after `patience` epochs without a better RMS on `val`, eligible or not: the guard's cost tends to fall as
    the learning rate decays and the replay is relearnt, so refused epochs that still gain on `val` go on.
    """

    def __init__(self, *, val: Split, guard: Split, tolerance: float, patience: int, batch_size: int):
        super().__init__()
        self.val, self.guard, self.tolerance, self.patience = val, guard, tolerance, patience
        self.batch_size = batch_size
        self.selection: dict = {}
        self._best_weights = None
        self._wait = 0
        self._best_val = float("inf")  # any epoch's, for the stopping

    def _rms(self) -> tuple[float, float]:
        return (
            answer_rms(self.model, self.val, batch_size=self.batch_size),
            answer_rms(self.model, self.guard, batch_size=self.batch_size),
        )

    def on_train_begin(self, logs=None):
        val_rms, guard_rms = self._rms()
        self._best_weights = self.model.get_weights()
        self._best_val = val_rms
        self.selection = {
            "epoch": 0,
            "val_rms": val_rms,
            "guard_rms": guard_rms,
            "start": {"val_rms": val_rms, "guard_rms": guard_rms},
            "guard_limit": guard_rms + self.tolerance,
            "refused": [],
        }

    def on_epoch_end(self, epoch, logs=None):
        val_rms, guard_rms = self._rms()
        if logs is not None:  # into the history beside the losses (learning curves, the run's metrics)
            logs["val_rms"], logs["guard_rms"] = val_rms, guard_rms
        eligible = guard_rms <= self.selection["guard_limit"]
        if not eligible:
            self.selection["refused"].append(epoch + 1)
        if eligible and val_rms < self.selection["val_rms"]:
            self.selection.update(epoch=epoch + 1, val_rms=val_rms, guard_rms=guard_rms)
            self._best_weights = self.model.get_weights()
        if val_rms < self._best_val:
            self._best_val, self._wait = val_rms, 0
        else:
            self._wait += 1
            if self._wait >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)


def has_sigma_head(model: keras.Model) -> bool:
    """True for a member answering (inclination, sigma) per image (the shipped members)."""
    return model.output_shape[-1] == 2


def compile_member(model: keras.Model, *, kind: str, learning_rate: float = 2e-3) -> None:
    if kind == "regression" and has_sigma_head(model):
        # A member with a learned sigma (fine-tuned from a shipped one) keeps training both heads.
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=gaussian_nll_loss, metrics=[inclination_mae])
    elif kind == "regression":
        # Huber in degrees: MSE-like near the answer, but a few mislabeled images cannot dominate.
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=keras.losses.Huber(delta=5.0),
            metrics=[keras.metrics.RootMeanSquaredError(name="rms")],
        )
    else:
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="binary_crossentropy",
            metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
        )


def fit_member(
    model: keras.Model,
    *,
    kind: str,
    train: Split,
    val: Split,
    epochs: int,
    batch_size: int = 64,
    patience: int = 4,
    seed: int = 0,
    learning_rate: float = 2e-3,
    on_epoch: Callable[[int, int, dict], None] | None = None,
    max_seconds: float | None = None,
    verbose: int = 0,
    input_mode: str = "color",
) -> FitResult:
    """Train with early stopping on the validation loss (best weights restored).

    `model` may be freshly built or loaded from an earlier version (fine-tuning: pass a lower
    learning rate and fewer epochs); its weights are where training starts.
    """
    flux = input_mode == "flux"
    keras.utils.set_random_seed(seed)
    if kind == "regression" and train.weights is None:
        train = Split(train.images, train.target, metrics.bin_weights(train.target))
    compile_member(model, kind=kind, learning_rate=learning_rate)
    train_ds = make_dataset(train, batch_size=batch_size, augment=True, shuffle=True, seed=seed, flux=flux)
    val_ds = make_dataset(val, batch_size=batch_size * 2, augment=False, shuffle=False, flux=flux)
    batches = math.ceil(len(train.target) / batch_size)
    progress = _Progress(on_epoch, epochs, batches)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        progress,
        _Schedule(learning_rate, epochs, max_seconds),
    ]
    started = time.perf_counter()
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False
    )
    seconds = time.perf_counter() - started
    hist = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    epoch_seconds = progress.epoch_seconds or [seconds]
    # Images per second of training (includes the validation pass, as a real epoch does).
    ips = len(train.target) / float(np.median(epoch_seconds))
    return FitResult(history=hist, epochs=len(epoch_seconds), images_per_second=ips, seconds=seconds)


def predict_array(model: keras.Model, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Batched prediction through one compiled function (uint8 or float input)."""
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        if chunk.dtype == np.uint8:
            chunk = chunk.astype(np.float32) / 255.0
        # The first column: the inclination (or probability), also of members that add a sigma.
        out.append(np.asarray(fn(tf.constant(chunk, tf.float32))).reshape(len(chunk), -1)[:, 0])
    return np.concatenate(out) if out else np.zeros(0, np.float32)


# ------------------------------------------------------------------------------------------------
# Members with a learned sigma, trained with the survey look, resumable


def gaussian_nll_loss(y_true, y_pred):
    """Huber on the inclination plus the Gaussian negative log-likelihood of its sigma, per image.

    y_pred is N x 2 (degrees, sigma in degrees). The likelihood term sees the error through
    stop_gradient, so the sigma head learns how wrong the estimate is without pulling the estimate
    toward images it finds easy (the known failure of plain Gaussian NLL regression).
    """
    y = tf.reshape(tf.cast(y_true, tf.float32), [-1])
    mu, sigma = y_pred[:, 0], y_pred[:, 1]
    error = y - mu
    huber = tf.where(tf.abs(error) < 5.0, 0.5 * error**2, 5.0 * (tf.abs(error) - 2.5))
    seen = tf.stop_gradient(error)
    nll = 0.5 * (seen / sigma) ** 2 + tf.math.log(sigma)
    return huber + nll


def inclination_mae(y_true, y_pred):
    return tf.abs(tf.reshape(tf.cast(y_true, tf.float32), [-1]) - y_pred[:, 0])


def _survey_dataset(split: Split, *, batch_size: int, seed: int) -> tf.data.Dataset:

    rotate = keras.layers.RandomRotation(6.0 / 360.0, fill_mode="reflect", seed=seed)
    shift = keras.layers.RandomTranslation(0.03, 0.03, fill_mode="reflect", seed=seed + 1)

    def augment(x, y, w):
        x = tf.cast(x, tf.float32) / 255.0
        x = shift(rotate(x, training=True), training=True)
        return survey_look.tf_augment(x), y, w

    ds = tf.data.Dataset.from_tensor_slices((split.images, split.target.astype(np.float32), split.weights))
    ds = ds.shuffle(min(len(split.target), 20_000), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    return ds.map(augment, num_parallel_calls=1).prefetch(2)


class _DeadlineSchedule(keras.callbacks.Callback):
    """Cosine learning rate over wall-clock time from `started` to `until` (unix times); stops by `until`.

    Wall-clock rather than epochs because the machine is shared and training may be interrupted and
    resumed: the schedule picks up where the clock says it is. Training stops after the last epoch that
    ends before the deadline, judged by how long the one just finished took: an epoch of a large set can
    take a quarter of an hour, and a run that started one more at 16:29 for a 16:30 deadline would hold
    the cores (and whoever waits for its result) until 16:45.
    """

    def __init__(self, learning_rate: float, started: float, until: float):
        super().__init__()
        self.base, self.started, self.until = learning_rate, started, until
        self.epoch_began = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_began = time.time()
        fraction = min(max((self.epoch_began - self.started) / max(self.until - self.started, 1.0), 0.0), 1.0)
        self.model.optimizer.learning_rate.assign(self.base * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * fraction))))

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        if now + (now - self.epoch_began) > self.until:
            self.model.stop_training = True


def _fit_until_deadline(
    model: keras.Model,
    *,
    train: Split,
    val: Split,
    checkpoint_dir: str,
    started: float,
    until: float,
    max_epochs: int,
    batch_size: int,
    seed: int,
    learning_rate: float,
    verbose: int,
) -> dict:
    """Fit a compiled model with the survey look until the deadline, backing up every epoch; the history."""
    val_ds = make_dataset(val, batch_size=128, augment=False, shuffle=False)
    history = model.fit(
        _survey_dataset(train, batch_size=batch_size, seed=seed),
        validation_data=val_ds,
        epochs=max_epochs,
        callbacks=[
            keras.callbacks.BackupAndRestore(checkpoint_dir, save_freq="epoch", delete_checkpoint=False),
            _DeadlineSchedule(learning_rate, started, until),
        ],
        verbose=verbose,
    )
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}


def fit_resumable(
    model: keras.Model,
    *,
    train: Split,
    val: Split,
    checkpoint_dir: str,
    started: float,
    until: float,
    max_epochs: int = 200,
    batch_size: int = 32,
    seed: int = 0,
    learning_rate: float = 2e-3,
    verbose: int = 2,
) -> dict:
    """Train a sigma-regression member until the wall-clock deadline; resumes from checkpoint_dir.

    Every epoch is backed up (weights, optimizer and epoch counter, keras.callbacks.BackupAndRestore),
    so killing the process loses at most one epoch and rerunning the same call continues.
    """
    keras.utils.set_random_seed(seed)
    if train.weights is None:
        train = Split(train.images, train.target, metrics.bin_weights(train.target, width=5.0))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=gaussian_nll_loss, metrics=[inclination_mae])
    return _fit_until_deadline(
        model,
        train=train,
        val=val,
        checkpoint_dir=checkpoint_dir,
        started=started,
        until=until,
        max_epochs=max_epochs,
        batch_size=batch_size,
        seed=seed,
        learning_rate=learning_rate,
        verbose=verbose,
    )


def fit_rejection_resumable(
    model: keras.Model,
    *,
    train: Split,
    val: Split,
    checkpoint_dir: str,
    started: float,
    until: float,
    max_epochs: int = 200,
    batch_size: int = 32,
    seed: int = 0,
    learning_rate: float = 2e-3,
    verbose: int = 2,
) -> dict:
    """Train a rejection classifier (0 keep, 1 reject) until the wall-clock deadline; resumes from checkpoint_dir.

    The two classes weigh the same in total whatever their counts, and every image gets the survey
    look anew each epoch (junk and galaxies alike, so the look itself says nothing about the class).
    """
    keras.utils.set_random_seed(seed)
    if train.weights is None:
        positive = float(np.mean(train.target >= 0.5))
        weights = np.where(train.target >= 0.5, 0.5 / max(positive, 1e-6), 0.5 / max(1 - positive, 1e-6))
        train = Split(train.images, train.target, weights.astype(np.float32))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return _fit_until_deadline(
        model,
        train=train,
        val=val,
        checkpoint_dir=checkpoint_dir,
        started=started,
        until=until,
        max_epochs=max_epochs,
        batch_size=batch_size,
        seed=seed,
        learning_rate=learning_rate,
        verbose=verbose,
    )


# ------------------------------------------------------------------------------------------------
# Fine-tuning an active member to a survey


def fine_tune_member(
    model: keras.Model,
    *,
    train: Split,
    val: Split,
    epochs: int,
    batch_size: int = 32,
    learning_rate: float = 3e-4,
    patience: int = 3,
    seed: int = 0,
    max_seconds: float | None = None,
    on_epoch: Callable[[int, int, dict], None] | None = None,
    guard: Split | None = None,
    guard_tolerance: float = 0.1,
) -> FitResult:
    """Go on training a trained regression member (its weights as they are) on new data, at a low learning rate.

    Members with a learned sigma (N x 2 output) keep training it with their own loss; plain members use the Huber
    loss of `fit_member`. Without `guard`, early stopping on the validation loss restores the best epoch. With
    `guard` (labelled images of what the member must not forget), the epoch kept is the one with the lowest RMS on
    `val` whose RMS on `guard` is at most `guard_tolerance` deg worse than at the start, the starting weights
    included (see _GuardedSelection); FitResult.selection says which and why.
    """
    keras.utils.set_random_seed(seed)
    if train.weights is None:
        train = Split(train.images, train.target, metrics.bin_weights(train.target, width=5.0))
    with_sigma = len(model.outputs[0].shape) == 2 and model.outputs[0].shape[-1] == 2
    if with_sigma:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=gaussian_nll_loss, metrics=[inclination_mae])
    else:
        compile_member(model, kind="regression", learning_rate=learning_rate)
    progress = _Progress(on_epoch, epochs, math.ceil(len(train.target) / batch_size))
    if guard is None:
        selection = None
        stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    else:
        selection = stopping = _GuardedSelection(
            val=val, guard=guard, tolerance=guard_tolerance, patience=patience, batch_size=batch_size * 2
        )
    started = time.perf_counter()
    history = model.fit(
        make_dataset(train, batch_size=batch_size, augment=True, shuffle=True, seed=seed),
        validation_data=make_dataset(val, batch_size=batch_size * 2, augment=False, shuffle=False),
        epochs=epochs,
        callbacks=[stopping, progress, _Schedule(learning_rate, epochs, max_seconds)],
        verbose=0,
        shuffle=False,
    )
    seconds = time.perf_counter() - started
    epoch_seconds = progress.epoch_seconds or [seconds]
    return FitResult(
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
        epochs=len(progress.epoch_seconds),
        images_per_second=len(train.target) / float(np.median(epoch_seconds)),
        seconds=seconds,
        selection=selection.selection if selection is not None else None,
    )
