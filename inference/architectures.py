"""VGG-style Keras models: inclination regression (45-90 deg) and "would a human reject this" classifier.

Django-free. Colour members use only stock Keras layers, so a saved .keras or .h5 file loads anywhere without
custom objects: the regression head is a linear unit rescaled to degrees (67.5 + 22.5 x), i.e. the
original's [-1, 1] target scaling built into the model. Flux members (input mode "flux": float g, r, i in sky
noise units, imaging.normalise_flux) start with AsinhScaling, registered here, so importing this module is
what lets their files load (inference.ensemble does).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

INCLINATION_MIN = 45.0
INCLINATION_MAX = 90.0
HALF_RANGE = (INCLINATION_MAX - INCLINATION_MIN) / 2
CENTRE = (INCLINATION_MAX + INCLINATION_MIN) / 2


@dataclass(frozen=True)
class Architecture:
    """A VGG-style stack: blocks of 3x3 convolutions (filters, convolutions per block), max-pooled."""

    name: str
    blocks: tuple[tuple[int, int], ...]
    dense: int
    # Average-pool the input first: 128 px stamps carry more detail than the axis ratio needs, and
    # halving the resolution makes every later layer 4x cheaper (what makes 2-core training feasible).
    stem_pool: int = 2
    dropout: float = 0.2
    # "pool": the stem averages each 2 x 2 block and drops the rest. "haar": a 2 x 2 stride-2 convolution that
    # starts as the Haar transform, the average plus three differences per colour (HAAR_PATTERNS), so the
    # halved image keeps every detail of the full one: a thick disk seen edge-on is only a few pixels high
    # in a small stamp, and its inclination lies in exactly the detail that averaging throws away.
    stem: str = "pool"


ARCHITECTURES: dict[str, Architecture] = {
    "vgg_a": Architecture("vgg_a", ((16, 1), (32, 1), (64, 2), (96, 1)), dense=64),
    "vgg_b": Architecture("vgg_b", ((16, 1), (32, 2), (64, 1), (128, 1)), dense=48),
    "vgg_c": Architecture("vgg_c", ((24, 1), (48, 1), (72, 1), (96, 1)), dense=96, dropout=0.3),
    # The shipped rejection classifier: junk vs galaxies needs far less capacity than the inclination.
    "vgg_s": Architecture("vgg_s", ((8, 1), (16, 1), (32, 1), (48, 1)), dense=32),
    # The three above with the Haar stem: `with_haar_stem` turns a trained member into one of these that answers
    # exactly as it did, and fine-tuning then teaches it to read the detail.
    "vgg_a_haar": Architecture("vgg_a_haar", ((16, 1), (32, 1), (64, 2), (96, 1)), dense=64, stem="haar"),
    "vgg_b_haar": Architecture("vgg_b_haar", ((16, 1), (32, 2), (64, 1), (128, 1)), dense=48, stem="haar"),
    "vgg_c_haar": Architecture("vgg_c_haar", ((24, 1), (48, 1), (72, 1), (96, 1)), dense=96, dropout=0.3, stem="haar"),
    # For tests: a few thousand parameters, trains in a second.
    "tiny": Architecture("tiny", ((4, 1), (8, 1)), dense=8, stem_pool=1, dropout=0.0),
}

# A Haar architecture -> the pooled one `with_haar_stem` rebuilds into it.
POOLED_TWIN = {name: name.removesuffix("_haar") for name, arch in ARCHITECTURES.items() if arch.stem == "haar"}

DEFAULT_REGRESSION_MEMBERS = ("vgg_a", "vgg_b", "vgg_c")
DEFAULT_REJECTION_ARCHITECTURE = "vgg_a"


@keras.saving.register_keras_serializable(package="giz")
class AsinhScaling(layers.Layer):
    """asinh(x / s) per channel with a learned softening s: linear in the faint outskirts (where the disk's
    outline is), logarithmic in the bright core, the balance learned from the data instead of fixed by a
    display stretch. s starts at `initial` sky sigmas and is kept positive (s = softplus(w) + 0.01)."""

    def __init__(self, initial: float = 3.0, **kwargs):
        super().__init__(**kwargs)
        self.initial = float(initial)

    def build(self, input_shape):
        import math

        raw = math.log(math.expm1(max(self.initial - 0.01, 1e-3)))  # softplus^-1
        self.softening = self.add_weight(
            name="softening", shape=(input_shape[-1],), initializer=keras.initializers.Constant(raw)
        )

    def call(self, x):
        from keras import ops

        return ops.arcsinh(x / (ops.softplus(self.softening) + 0.01))

    def get_config(self):
        return {**super().get_config(), "initial": self.initial}


INPUT_MODES = ("color", "bands", "flux")


def _input_stage(inputs, input_mode: str):
    if input_mode not in INPUT_MODES:
        raise ValueError(f"input_mode must be one of {INPUT_MODES}, not {input_mode!r}")
    return AsinhScaling(name="asinh_scaling")(inputs) if input_mode == "flux" else inputs


# Rows, columns of the 2 x 2 block: the average, then the left-right, top-bottom and diagonal differences.
HAAR_PATTERNS = (((1, 1), (1, 1)), ((1, -1), (1, -1)), ((1, 1), (-1, -1)), ((1, -1), (-1, 1)))


def haar_kernel(channels: int = 3):
    """2 x 2 x channels x 4 channels: output k x channels + c is pattern k of input channel c, divided by 4 (so
    the first `channels` outputs are exactly the 2 x 2 average pooling of the "pool" stem)."""
    import numpy as np

    kernel = np.zeros((2, 2, channels, len(HAAR_PATTERNS) * channels), np.float32)
    for k, pattern in enumerate(HAAR_PATTERNS):
        for c in range(channels):
            kernel[:, :, c, k * channels + c] = np.asarray(pattern, np.float32) / 4.0
    return kernel


def _backbone(arch: Architecture, inputs):
    x = inputs
    if arch.stem == "haar":
        channels = inputs.shape[-1]
        x = layers.Conv2D(
            len(HAAR_PATTERNS) * channels,
            2,
            strides=2,
            use_bias=False,
            kernel_initializer=keras.initializers.Constant(haar_kernel(channels)),
            name="stem_haar",
        )(x)
    elif arch.stem_pool > 1:
        x = layers.AveragePooling2D(arch.stem_pool, name="stem_pool")(x)
    for b, (filters, convs) in enumerate(arch.blocks):
        for c in range(convs):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{b}_conv{c}")(x)
            x = layers.BatchNormalization(name=f"block{b}_bn{c}")(x)
            x = layers.Activation("relu", name=f"block{b}_relu{c}")(x)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    # Flatten rather than global pooling: where the light sits (the disk's extent along each
    # axis) is the signal, so spatial layout must reach the dense layer.
    x = layers.Flatten(name="flatten")(x)
    if arch.dropout:
        x = layers.Dropout(arch.dropout, name="dropout")(x)
    return layers.Dense(arch.dense, activation="relu", name="dense")(x)


def build_regression_model(
    architecture: str, *, input_size: int = 128, name: str | None = None, input_mode: str = "color"
) -> keras.Model:
    """Image (input_size x input_size x 3: [0, 1], or sky-noise units for "flux") -> inclination in degrees."""
    arch = ARCHITECTURES[architecture]
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = _backbone(arch, _input_stage(inputs, input_mode))
    # Zero-initialised: training starts from 67.5 deg everywhere instead of wild outputs.
    x = layers.Dense(1, kernel_initializer="zeros", name="scaled_inclination")(x)
    outputs = layers.Rescaling(HALF_RANGE, offset=CENTRE, name="inclination_deg")(x)
    return keras.Model(inputs, outputs, name=name or f"regression_{architecture}")


# The learned per-image sigma (degrees) is SIGMA_FLOOR + SIGMA_SCALE x softplus(z): never zero, and
# about 1.7 deg at initialisation, near the error of a trained member.
SIGMA_FLOOR, SIGMA_SCALE = 0.3, 2.0


def build_sigma_regression_model(
    architecture: str, *, input_size: int = 128, name: str | None = None, input_mode: str = "color"
) -> keras.Model:
    """Image -> (inclination in degrees, its sigma in degrees) as one N x 2 output.

    Trained with a Gaussian negative log-likelihood (inference.keras_training.gaussian_nll_loss), the
    second column is the member's own estimate of its error on this image. Stock layers only, so
    the file loads without custom objects.
    """
    arch = ARCHITECTURES[architecture]
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = _backbone(arch, _input_stage(inputs, input_mode))
    mu = layers.Dense(1, kernel_initializer="zeros", name="scaled_inclination")(x)
    mu = layers.Rescaling(HALF_RANGE, offset=CENTRE, name="inclination_deg")(mu)
    sigma = layers.Dense(1, activation="softplus", kernel_initializer="zeros", name="sigma_softplus")(x)
    sigma = layers.Rescaling(SIGMA_SCALE, offset=SIGMA_FLOOR, name="sigma_deg")(sigma)
    outputs = layers.Concatenate(name="inclination_sigma")([mu, sigma])
    return keras.Model(inputs, outputs, name=name or f"sigma_regression_{architecture}")


def with_haar_stem(model: keras.Model, architecture: str, *, name: str | None = None) -> keras.Model:
    """A colour regression member (with or without a sigma head) of a "pool" architecture rebuilt as
    `architecture` (its "haar" twin, POOLED_TWIN) that
    answers exactly as `model` does: every layer keeps its weights, and the first convolution reads the Haar
    stem's average channels with its old kernel and the new detail channels with zeros."""
    import numpy as np

    build = build_sigma_regression_model if model.output_shape[-1] == 2 else build_regression_model
    wide = build(architecture, input_size=model.input_shape[1], name=name or model.name)
    old_layers = {layer.name: layer for layer in model.layers}
    for layer in wide.layers:
        if layer.name == "stem_haar" or not layer.weights:
            continue
        weights = old_layers[layer.name].get_weights()
        if layer.name == "block0_conv0":
            kernel = np.zeros(layer.get_weights()[0].shape, np.float32)
            kernel[:, :, : weights[0].shape[2]] = weights[0]  # the average channels come first
            weights = [kernel]
        layer.set_weights(weights)
    return wide


def build_rejection_model(
    architecture: str, *, input_size: int = 128, name: str | None = None, input_mode: str = "color"
) -> keras.Model:
    """Image -> probability that volunteers would reject it (face-on, not a spiral, bad image)."""
    arch = ARCHITECTURES[architecture]
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = _backbone(arch, _input_stage(inputs, input_mode))
    outputs = layers.Dense(1, activation="sigmoid", name="rejection")(x)
    return keras.Model(inputs, outputs, name=name or f"rejection_{architecture}")


def forward_flops(model: keras.Model) -> int:
    """Multiply-adds x 2 of one forward pass for one image (convolutions and dense layers only)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            out = layer.output.shape  # (None, h, w, c_out)
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            total += 2 * out[1] * out[2] * out[3] * kh * kw * c_in
        elif isinstance(layer, layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)
