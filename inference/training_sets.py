"""Synthetic training and test sets from both galaxy sources (acquisition.renderer, acquisition.galsim_renderer).

Django-free. Every image goes through `inference.imaging.prepare_for_model` (the one preprocessing
path), rotated by the known position angle like stored galaxies are. Sets are cached as uint8
.npz files (a 6,000-image 128 px set is 300 MB as float32, 75 MB as uint8) keyed by everything that
changes the pixels, and rendered in worker processes.
"""

from __future__ import annotations

import hashlib
import io
import math
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from acquisition import composites, galsim_renderer, population
from acquisition import renderer as synthetic
from inference import baseline, imaging, survey_look

# Bump when rendering or preparation changes, so stale caches are not reused.
CACHE_VERSION = 2


@dataclass
class SyntheticSet:
    images: np.ndarray  # N x S x S x 3 uint8 (prepared, divide by 255)
    inclination: np.ndarray  # float32 degrees
    rejected: np.ndarray  # float32 0/1: would a volunteer reject it (face-on or junk)
    position_angle: np.ndarray  # float32 degrees
    seeds: np.ndarray  # int64, one per image
    baseline_i: np.ndarray | None = None  # axial-ratio baseline on the full-resolution i band
    baseline_prepared: np.ndarray | None = None  # ... and on the prepared image the CNN sees

    def __len__(self) -> int:
        return len(self.inclination)

    def floats(self) -> np.ndarray:
        return self.images.astype(np.float32) / 255.0


def _render_one(job: tuple) -> tuple[np.ndarray, float, float, float, float, float]:
    seed, index, size, render_size, mode, inc_lo, inc_hi, with_baseline = job
    rng = np.random.default_rng([seed, index])
    params = synthetic.draw_params(rng, inclination=float(rng.uniform(inc_lo, inc_hi)))
    rendering = synthetic.render_galaxy(params, size=render_size, seed=int(seed * 1_000_003 + index))
    if mode == "color":
        decoded = imaging.DecodedImage(
            pixels=synthetic.to_color_rgb(rendering).astype(np.float32) / 255.0, kind="rgb", format="synthetic"
        )
    else:
        decoded = imaging.DecodedImage(pixels=rendering.bands, kind="bands", format="synthetic", bands=("g", "r", "i"))
    prepared = imaging.prepare_for_model(decoded, size=size, mode=mode, position_angle=params.position_angle)
    baseline_i = baseline_prepared = float("nan")
    if with_baseline:
        # The axial-ratio baseline on the same galaxy: on its best input (the full-resolution
        # i band) and on exactly the prepared image the CNN sees.

        for attr, image in (("i", rendering.band("i")), ("prepared", prepared)):
            try:
                value = baseline.predict_inclination(image)
            except ValueError:
                value = 0.0  # a failed fit counts as a large error, as in bench_baseline
            if attr == "i":
                baseline_i = value
            else:
                baseline_prepared = value
    return (
        np.round(prepared * 255).astype(np.uint8),
        params.inclination,
        params.position_angle,
        float(index),
        baseline_i,
        baseline_prepared,
    )


def _junk(rng: np.random.Generator, size: int) -> np.ndarray:
    """An image a volunteer rejects as bad: blank sky (outside the footprint), noise, stripes, saturation."""
    kind = rng.integers(4)
    sky = rng.normal(0.04, 0.015, (size, size, 3))
    if kind == 0:
        image = np.zeros((size, size, 3))
    elif kind == 1:
        image = sky
    elif kind == 2:
        image = sky + (np.sin(np.arange(size) / rng.uniform(1.5, 6))[:, None, None] > 0.6) * rng.uniform(0.3, 1)
    else:
        image = np.full((size, size, 3), rng.uniform(0.6, 1.0)) + sky
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _map_jobs(fn: Callable, jobs: list, *, processes: int, chunksize: int, progress) -> list:
    """fn over jobs in order, in worker processes when there are enough jobs, reporting progress(done, total)."""
    results = []
    n = len(jobs)
    if processes > 1 and n > 8:
        # spawn: the parent may hold TensorFlow's threads, which do not survive a fork.
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            for r in pool.imap(fn, jobs, chunksize=chunksize):
                results.append(r)
                if progress:
                    progress(len(results), n)
    else:
        for job in jobs:
            results.append(fn(job))
            if progress:
                progress(len(results), n)
    return results


def render_set(
    n: int,
    *,
    seed: int,
    size: int = 128,
    render_size: int = 256,
    mode: str = "color",
    inclination_range: tuple[float, float] = (45.0, 90.0),
    processes: int = 2,
    with_baseline: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SyntheticSet:
    """Render n galaxies with inclinations uniform over `inclination_range` (deterministic per seed)."""
    jobs = [(seed, i, size, render_size, mode, *inclination_range, with_baseline) for i in range(n)]
    results = _map_jobs(_render_one, jobs, processes=processes, chunksize=8, progress=progress)
    images = np.stack([r[0] for r in results]) if results else np.zeros((0, size, size, 3), np.uint8)
    inclination = np.array([r[1] for r in results], dtype=np.float32)
    return SyntheticSet(
        images=images,
        inclination=inclination,
        rejected=(inclination < 45.0).astype(np.float32),
        position_angle=np.array([r[2] for r in results], dtype=np.float32),
        seeds=np.array([seed * 1_000_003 + i for i in range(n)], dtype=np.int64),
        baseline_i=np.array([r[4] for r in results], dtype=np.float32) if with_baseline else None,
        baseline_prepared=np.array([r[5] for r in results], dtype=np.float32) if with_baseline else None,
    )


def cached_set(cache_dir: Path | str | None, n: int, *, seed: int, **kwargs) -> SyntheticSet:
    """`render_set`, read from / written to a .npz in cache_dir (None: no cache)."""
    if cache_dir is None:
        return render_set(n, seed=seed, **kwargs)
    key = repr(
        (CACHE_VERSION, n, seed, sorted((k, v) for k, v in kwargs.items() if k not in ("progress", "processes")))
    )
    path = Path(cache_dir) / f"synthetic-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path) as data:
            return SyntheticSet(**{k: data[k] for k in data.files})
    result = render_set(n, seed=seed, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{k: v for k, v in result.__dict__.items() if v is not None})
    tmp.replace(path)  # a half-written cache is never read
    return result


@dataclass
class PairedSet:
    """The same galaxies twice: as the colour JPEG volunteers see (8 bits) and as float g, r, i planes."""

    color: SyntheticSet  # uint8 prepared colour images (from a quality-90 JPEG of the SDSS-like composite)
    # N x S x S x 3 float32, imaging.prepare_for_model(mode="flux"): sky-noise units (cores and stars reach
    # 1e5 sigmas, beyond float16)
    flux: np.ndarray

    def __len__(self) -> int:
        return len(self.color)


def _render_pair(job: tuple) -> tuple[np.ndarray, np.ndarray, float, float]:
    from PIL import Image

    seed, index, size, render_size, inc_lo, inc_hi = job
    rng = np.random.default_rng([seed, index])
    params = synthetic.draw_params(rng, inclination=float(rng.uniform(inc_lo, inc_hi)))
    rendering = synthetic.render_galaxy(params, size=render_size, seed=int(seed * 1_000_003 + index))
    # The colour picture as it is stored: an 8-bit JPEG of the composite, decoded again.
    jpeg = Image.open(io.BytesIO(synthetic.to_color_jpeg(rendering, quality=90))).convert("RGB")
    rgb = imaging.DecodedImage(pixels=np.asarray(jpeg, np.float32) / 255.0, kind="rgb", format="JPEG")
    color = imaging.prepare_for_model(rgb, size=size, mode="color", position_angle=params.position_angle)
    bands = imaging.DecodedImage(pixels=rendering.bands, kind="bands", format="FITS", bands=("g", "r", "i"))
    flux = imaging.prepare_for_model(bands, size=size, mode="flux", position_angle=params.position_angle)
    return np.round(color * 255).astype(np.uint8), flux.astype(np.float32), params.inclination, params.position_angle


def render_paired_set(
    n: int,
    *,
    seed: int,
    size: int = 128,
    render_size: int = 256,
    inclination_range: tuple[float, float] = (45.0, 90.0),
    processes: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> PairedSet:
    """n galaxies rendered once and prepared both ways, for comparing colour and band members fairly."""
    jobs = [(seed, i, size, render_size, *inclination_range) for i in range(n)]
    results = _map_jobs(_render_pair, jobs, processes=processes, chunksize=8, progress=progress)
    inclination = np.array([r[2] for r in results], dtype=np.float32)
    color = SyntheticSet(
        images=np.stack([r[0] for r in results]),
        inclination=inclination,
        rejected=(inclination < 45.0).astype(np.float32),
        position_angle=np.array([r[3] for r in results], dtype=np.float32),
        seeds=np.array([seed * 1_000_003 + i for i in range(n)], dtype=np.int64),
    )
    return PairedSet(color=color, flux=np.stack([r[1] for r in results]))


def cached_paired_set(cache_dir: Path | str, n: int, *, seed: int, **kwargs) -> PairedSet:
    """`render_paired_set` through a .npz cache in cache_dir."""
    options = sorted((k, v) for k, v in kwargs.items() if k not in ("progress", "processes"))
    key = repr((CACHE_VERSION, "paired", n, seed, options))
    path = Path(cache_dir) / f"paired-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path) as data:
            flux = data["flux"]
            return PairedSet(color=SyntheticSet(**{k: data[k] for k in data.files if k != "flux"}), flux=flux)
    result = render_paired_set(n, seed=seed, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, flux=result.flux, **{k: v for k, v in result.color.__dict__.items() if v is not None})
    tmp.replace(path)
    return result


def rejection_set(
    accepted: SyntheticSet, rejected_galaxies: SyntheticSet, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images and 0/1 targets for the rejection classifier: accepted galaxies vs face-on ones and junk."""
    rng = np.random.default_rng(seed)
    n_junk = max(1, len(rejected_galaxies) // 2)
    size = accepted.images.shape[1]
    junk = np.stack([_junk(rng, size) for _ in range(n_junk)])
    images = np.concatenate([accepted.images, rejected_galaxies.images, junk])
    target = np.concatenate([np.zeros(len(accepted)), np.ones(len(rejected_galaxies)), np.ones(n_junk)]).astype(
        np.float32
    )
    order = rng.permutation(len(target))
    return images[order], target[order]


# ------------------------------------------------------------------------------------------------
# Two independent sources over one realistic population, with the survey look applied

SOURCES = ("ours", "galsim")
# Per source, so a change to one renderer re-renders only its own sets. galsim 2: disks as thick as their
# q0 (SECH2_HEIGHT_PER_Q0); 3: light and knots along spiral arms, patchy dust.
SOURCE_CACHE_VERSION = {"ours": 2, "galsim": 3}


def estimate_position_angle(rgb_stamp: np.ndarray, *, size: int = 128) -> float | None:
    """The position angle the prediction path measures on an uploaded image (None when the fit fails).

    Training prepares its images with this same estimate, so the rotation a model sees in
    training is the one it sees in production (inference.services.image_position_angle).
    """

    decoded = imaging.DecodedImage(pixels=rgb_stamp.astype(np.float32) / 255.0, kind="rgb", format="synthetic")
    try:
        return baseline.measure_axial_ratio(imaging.prepare_for_model(decoded, size=size)).position_angle
    except ValueError:
        return None


def _at_native_scale(bands: np.ndarray, *, fov_arcsec: float, pixel_scale: float) -> np.ndarray:
    """Bands seen through a survey's coarser native pixels: binned to them, then resampled back to the stamp
    (as cutout services serve a small galaxy). Unchanged when the native pixels are finer than the stamp's."""
    size = bands.shape[0]
    native = int(max(16, round(fov_arcsec / pixel_scale)))
    if native >= size:
        return bands
    planes = []
    for k in range(bands.shape[-1]):
        plane = Image.fromarray(np.ascontiguousarray(bands[..., k], dtype=np.float32))
        planes.append(np.asarray(plane.resize((native, native), Image.BOX).resize((size, size), Image.BICUBIC)))
    return np.stack(planes, axis=-1)


def render_stamp(
    source: str,
    draw,
    *,
    seed: int,
    render_size: int = 256,
    look: bool = True,
    survey: population.SurveyLook = population.SDSS_LOOK,
) -> np.ndarray:
    """One colour stamp (uint8 render_size^2 x 3) of a population draw by `source`, as `survey` would show it
    (the draw carries the survey's seeing and noise; this adds its pixels and colour composite)."""
    rng = np.random.default_rng([seed, 0x5EED])
    if source == "galsim":
        bands = galsim_renderer.render_bands(draw, size=render_size, seed=seed, native_scale=survey.pixel_scale)
        return galsim_renderer.to_color_rgb(bands, rng if look else None, look=survey)
    if source != "ours":
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    params = synthetic.params_from_population(draw, rng)
    params.pixel_scale = draw.fov_arcsec / render_size
    # Off-centre galaxies: render a larger canvas at the same scale and cut the stamp from it.
    pad = int(math.ceil(max(abs(draw.offset_x), abs(draw.offset_y)) * render_size)) + 1 if draw.offset_x else 0
    rendering = synthetic.render_galaxy(params, size=render_size + 2 * pad, seed=seed)
    top = pad - int(round(draw.offset_y * render_size))
    left = pad - int(round(draw.offset_x * render_size))
    bands = rendering.bands[top : top + render_size, left : left + render_size]
    native = bands * (synthetic.SDSS_PIXEL_SCALE / params.pixel_scale) ** 2
    if not survey.is_reference:  # SDSS stamps stay exactly as the shipped ensemble was trained on them
        native = _at_native_scale(native, fov_arcsec=draw.fov_arcsec, pixel_scale=survey.pixel_scale)
        native = native + survey.sky_level
    if not look:
        return imaging.bands_to_rgb(
            native,
            stretch=composites.SDSS_STRETCH * survey.stretch,
            Q=composites.SDSS_Q * survey.softening,
            scales=tuple(np.array(composites.SDSS_BAND_SCALES) * np.array(survey.band_scales)),
        )
    return imaging.bands_to_rgb(
        native,
        stretch=composites.SDSS_STRETCH * survey.stretch * rng.uniform(0.7, 1.6),
        Q=composites.SDSS_Q * survey.softening * rng.uniform(0.6, 1.5),
        scales=tuple(np.array(composites.SDSS_BAND_SCALES) * np.array(survey.band_scales) * rng.uniform(0.85, 1.15, 3)),
    )


def source_draw(
    seed: int,
    index: int,
    *,
    inclination_range: tuple[float, float] = (45.0, 90.0),
    survey: population.SurveyLook = population.SDSS_LOOK,
):
    """(rng, draw): the population draw behind image `index` of a source set with `seed`, and the generator
    that goes on to randomise its stamp (so a benchmark can ask what kind of galaxy an image was)."""
    rng = np.random.default_rng([seed, index, 7])
    return rng, population.draw_population(rng, inclination=float(rng.uniform(*inclination_range)), look=survey)


def _source_one(job: tuple) -> tuple[np.ndarray, float, float, float]:

    source, seed, index, size, render_size, inc_lo, inc_hi, look_strength, survey = job
    rng, draw = source_draw(seed, index, inclination_range=(inc_lo, inc_hi), survey=survey)
    stamp_seed = int(seed * 1_000_003 + index)
    stamp = render_stamp(source, draw, seed=stamp_seed, render_size=render_size, look=look_strength > 0, survey=survey)
    stamp, rotation = survey_look.randomise_stamp(stamp, rng, strength=look_strength)
    angle = estimate_position_angle(stamp, size=size)
    angle_used = float("nan") if angle is None else angle  # as in production: no rotation without a fit
    decoded = imaging.DecodedImage(pixels=stamp.astype(np.float32) / 255.0, kind="rgb", format="synthetic")
    prepared = imaging.prepare_for_model(decoded, size=size, position_angle=angle)
    return np.round(prepared * 255).astype(np.uint8), draw.inclination, draw.position_angle + rotation, angle_used


def render_source_set(
    source: str,
    n: int,
    *,
    seed: int,
    size: int = 128,
    render_size: int = 256,
    inclination_range: tuple[float, float] = (45.0, 90.0),
    look_strength: float = 1.0,
    survey: population.SurveyLook = population.SDSS_LOOK,
    processes: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> SyntheticSet:
    """n prepared galaxies of one source, survey look applied, rotated by the *estimated* position angle.

    `survey` is the survey the galaxies are seen by (pixel scale, seeing, stretch, band balance; SDSS by
    default); `look_strength` scales the random stamp-level looks of inference.survey_look on top of it.
    """
    jobs = [(source, seed, i, size, render_size, *inclination_range, look_strength, survey) for i in range(n)]
    results = _map_jobs(_source_one, jobs, processes=processes, chunksize=4, progress=progress)
    inclination = np.array([r[1] for r in results], dtype=np.float32)
    return SyntheticSet(
        images=np.stack([r[0] for r in results]),
        inclination=inclination,
        rejected=(inclination < 45.0).astype(np.float32),
        position_angle=np.array([r[2] for r in results], dtype=np.float32),
        seeds=np.array([seed * 1_000_003 + i for i in range(n)], dtype=np.int64),
    )


def cached_source_set(cache_dir: Path | str, source: str, n: int, *, seed: int, **kwargs) -> SyntheticSet:
    """`render_source_set` through a uint8 .npz cache in cache_dir (rendering is the slow part)."""
    if kwargs.get("survey") == population.SDSS_LOOK:
        kwargs.pop("survey")  # the reference look: the same cache file as before surveys had looks
    options = sorted((k, v) for k, v in kwargs.items() if k not in ("progress", "processes"))
    key = repr((SOURCE_CACHE_VERSION[source], source, n, seed, options))
    path = Path(cache_dir) / f"{source}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path) as data:
            return SyntheticSet(**{k: data[k] for k in data.files})
    result = render_source_set(source, n, seed=seed, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{k: v for k, v in result.__dict__.items() if v is not None})
    tmp.replace(path)
    return result


# ------------------------------------------------------------------------------------------------
# Junk for the shipped rejection classifier: what a volunteer rejects, through the same look and
# preparation as the clean galaxies (so the classifier cannot tell them apart by the pipeline)

JUNK_KINDS = ("stars", "blank", "noise", "overlap", "face_on", "cartoon")
JUNK_CACHE_VERSION = 3  # 2: GalSim disks as thick as their q0; 3: GalSim arms and patchy dust


def _galaxy_free(draw, rng: np.random.Generator, *, stars: bool):
    """The draw's sky, seeing and stars with no galaxy in it (a disk 40 mag/arcsec^2 faint is no light)."""
    import dataclasses

    if stars:
        density, bright = float(10 ** rng.uniform(0.5, 1.6)), int(rng.choice([0, 1, 1, 2, 3]))
    else:
        density, bright = float(rng.uniform(0.0, 0.3)), 0
    return dataclasses.replace(
        draw,
        mu0_r=40.0,
        bulge_fraction=0.0,
        bar_strength=0.0,
        neighbour=False,
        star_density=density,
        bright_stars=bright,
    )


def _noise_stamp(rng: np.random.Generator, size: int) -> np.ndarray:
    from scipy import ndimage

    channels = 1 if rng.uniform() < 0.4 else 3
    level, spread = rng.uniform(0.0, 0.7), rng.uniform(0.03, 0.4)
    noise = rng.normal(level, spread, (size, size, channels))
    if rng.uniform() < 0.5:  # correlated noise (resampled or compressed data)
        noise = ndimage.gaussian_filter(noise, sigma=(rng.uniform(0.7, 4.0),) * 2 + (0,))
    noise = np.repeat(noise, 3 // channels, axis=-1)
    return np.round(np.clip(noise, 0, 1) * 255).astype(np.uint8)


def _cartoon_stamp(rng: np.random.Generator, size: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    background = [(255, 255, 255), (0, 0, 0), tuple(int(c) for c in rng.integers(0, 256, 3))][rng.choice(3)]
    image = Image.new("RGB", (size, size), background)
    pen = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 9))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = rng.uniform(-0.1, 0.9, 2) * size
        w, h = rng.uniform(0.08, 0.6, 2) * size
        box = [float(x0), float(y0), float(x0 + w), float(y0 + h)]
        shape = rng.integers(4)
        outline = int(rng.integers(1, 6))
        filled = colour if rng.uniform() < 0.6 else None
        if shape == 0:
            pen.ellipse(box, fill=filled, outline=colour, width=outline)
        elif shape == 1:
            pen.rectangle(box, fill=filled, outline=colour, width=outline)
        elif shape == 2:
            points = [tuple(float(v) for v in rng.uniform(0, size, 2)) for _ in range(int(rng.integers(3, 7)))]
            pen.polygon(points, fill=filled, outline=colour)
        else:
            pen.line(box, fill=colour, width=outline * 2)
    return np.asarray(image, dtype=np.uint8)


def _overlap_stamp(rng: np.random.Generator, source: str, seed: int, render_size: int) -> np.ndarray:
    """Two galaxies of similar size whose disks overlap, drawn at one stamp scale."""
    import dataclasses

    first = population.draw_population(rng)
    second = population.draw_population(rng)
    # R25 as a fraction of the stamp; the centres 0.4-1.2 R25 apart put one disk on the other.
    r25 = 1.0 / (2.0 * first.fov_factor)
    separation, angle = rng.uniform(0.4, 1.2) * r25, rng.uniform(0, 2 * math.pi)
    dx, dy = 0.5 * separation * math.cos(angle), 0.5 * separation * math.sin(angle)
    # Never exactly 0: the renderer pads its canvas only for a non-zero x offset.
    first = dataclasses.replace(first, offset_x=dx or 1e-3, offset_y=dy)
    second = dataclasses.replace(
        second,
        d25_arcmin=first.d25_arcmin * float(rng.uniform(0.5, 1.2)),
        fov_factor=first.fov_factor,
        stamp_scale=first.stamp_scale,
        cutout_scale=first.cutout_scale,
        offset_x=-dx or -1e-3,
        offset_y=-dy,
    )
    a = render_stamp(source, first, seed=seed, render_size=render_size, look=False)
    b = render_stamp(source, second, seed=seed + 1, render_size=render_size, look=False)
    return np.maximum(a, b)  # light adds; at an asinh stretch the brighter of the two is close


def junk_stamp(kind: str, rng: np.random.Generator, *, seed: int, render_size: int = 256, face_on_max: float = 42.0):
    """One uint8 colour stamp of a junk `kind` (JUNK_KINDS); galaxy-based kinds alternate the two sources."""
    source = SOURCES[seed % 2]
    if kind in ("stars", "blank"):
        if kind == "blank" and rng.uniform() < 0.25:
            # Outside the survey footprint: SkyServer answers an all-dark (or flat) stamp.
            return np.full((render_size, render_size, 3), int(rng.choice([0, 0, 0, 255, rng.integers(256)])), np.uint8)
        draw = _galaxy_free(population.draw_population(rng), rng, stars=kind == "stars")
        return render_stamp(source, draw, seed=seed, render_size=render_size)
    if kind == "noise":
        return _noise_stamp(rng, render_size)
    if kind == "cartoon":
        return _cartoon_stamp(rng, render_size)
    if kind == "overlap":
        return _overlap_stamp(rng, source, seed, render_size)
    if kind == "face_on":
        draw = population.draw_population(rng, inclination=float(rng.uniform(0.0, face_on_max)))
        return render_stamp(source, draw, seed=seed, render_size=render_size)
    raise ValueError(f"kind must be one of {JUNK_KINDS}, not {kind!r}")


def _junk_one(job: tuple) -> np.ndarray:
    kind, seed, index, size, render_size, face_on_max = job
    rng = np.random.default_rng([seed, index, 11])
    stamp_seed = int(seed * 1_000_003 + index)
    stamp = junk_stamp(kind, rng, seed=stamp_seed, render_size=render_size, face_on_max=face_on_max)
    stamp, _ = survey_look.randomise_stamp(stamp, rng)
    # Prepared exactly as an upload: rotated by whatever position angle the image yields.
    angle = estimate_position_angle(stamp, size=size)
    decoded = imaging.DecodedImage(pixels=stamp.astype(np.float32) / 255.0, kind="rgb", format="synthetic")
    return np.round(imaging.prepare_for_model(decoded, size=size, position_angle=angle) * 255).astype(np.uint8)


def render_junk_set(
    kind: str,
    n: int,
    *,
    seed: int,
    size: int = 128,
    render_size: int = 256,
    face_on_max: float = 42.0,
    processes: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """n prepared junk images (uint8 N x size x size x 3) of one kind, deterministic per seed."""
    jobs = [(kind, seed, i, size, render_size, face_on_max) for i in range(n)]
    results = _map_jobs(_junk_one, jobs, processes=processes, chunksize=4, progress=progress)
    return np.stack(results) if results else np.zeros((0, size, size, 3), np.uint8)


def cached_junk_set(cache_dir: Path | str, kind: str, n: int, *, seed: int, **kwargs) -> np.ndarray:
    """`render_junk_set` through a uint8 .npz cache in cache_dir."""
    options = sorted((k, v) for k, v in kwargs.items() if k not in ("progress", "processes"))
    key = repr((JUNK_CACHE_VERSION, kind, n, seed, options))
    path = Path(cache_dir) / f"junk-{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path) as data:
            return data["images"]
    images = render_junk_set(kind, n, seed=seed, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, images=images)
    tmp.replace(path)
    return images
