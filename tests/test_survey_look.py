"""Survey-look transforms (pure functions) and the 8-fold test-time augmentation."""

import numpy as np
import pytest

from inference import survey_look
from inference.ensemble import compile_group, dihedral_views


@pytest.fixture
def stamp():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 30, (64, 64, 3)).astype(np.uint8)
    image[28:36, 10:54] = 200  # an edge-on "galaxy" along the rows
    return image


def test_inversion_is_black_on_white_and_its_own_inverse(stamp):
    inverted = survey_look.invert(stamp)
    assert np.median(inverted) > 200
    assert np.array_equal(survey_look.invert(inverted), stamp)


def test_rotation_fills_the_corners_white_or_black(stamp):
    white = survey_look.rotate_with_corners(stamp, 30.0, white=True)
    black = survey_look.rotate_with_corners(stamp, 30.0, white=False)
    assert white.shape == stamp.shape
    assert (white[0, 0] == 255).all() and (white[-1, -1] == 255).all()
    assert (black[0, 0] == 0).all()
    # A quarter turn moves the galaxy from the rows to the columns.
    turned = survey_look.rotate_with_corners(stamp, 90.0)
    assert turned[10:54, 28:36].mean() > 150


def test_grey_copy_jpeg_and_gamma(stamp):
    grey = survey_look.grey_copy(stamp, 1)
    assert np.array_equal(grey[..., 0], grey[..., 2])
    assert np.array_equal(grey[..., 0], stamp[..., 1])
    jpeg = survey_look.jpeg_roundtrip(stamp, 40)
    assert jpeg.shape == stamp.shape and 0 < np.abs(jpeg.astype(int) - stamp).mean() < 20
    assert survey_look.adjust_gamma(stamp, 0.5)[30, 30, 0] > stamp[30, 30, 0]


def test_trails_stars_and_gradients_add_light(stamp):
    rng = np.random.default_rng(1)
    for transformed in (
        survey_look.add_satellite_trail(stamp, rng),
        survey_look.add_bleeding_star(stamp, rng),
        survey_look.add_gradient(stamp, amplitude=20, angle=0.3),
    ):
        assert transformed.shape == stamp.shape and transformed.dtype == np.uint8
        assert not np.array_equal(transformed, stamp)


def test_randomise_stamp_is_seeded_and_does_nothing_at_strength_zero(stamp):
    same, rotation = survey_look.randomise_stamp(stamp, np.random.default_rng(2), strength=0.0)
    assert np.array_equal(same, stamp) and rotation == 0.0
    first = survey_look.randomise_stamp(stamp, np.random.default_rng(3))
    again = survey_look.randomise_stamp(stamp, np.random.default_rng(3))
    assert np.array_equal(first[0], again[0]) and first[1] == again[1]


def test_tf_augment_keeps_shape_and_range(stamp):
    batch = np.repeat(stamp[np.newaxis].astype(np.float32) / 255.0, 8, axis=0)
    out = survey_look.tf_augment(batch).numpy()
    assert out.shape == batch.shape
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_dihedral_views_are_the_eight_distinct_turns_and_flips(stamp):
    views = dihedral_views(stamp[np.newaxis].astype(np.float32)).numpy()
    assert views.shape == (8, 64, 64, 3)
    assert np.array_equal(views[0], stamp)
    assert len({v.tobytes() for v in views}) == 8


def test_test_time_augmentation_makes_any_model_orientation_invariant(stamp):
    import keras

    # A model that only looks at the top-left quadrant: as orientation-dependent as it gets.
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Cropping2D(((0, 32), (0, 32)))(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_initializer="ones")(x))
    run = compile_group([model], 64)
    image = stamp[np.newaxis].astype(np.float32) / 255.0
    image[:, :8, :8] = 1.0  # a bright corner: the plain model's answer depends on where it is
    answers = [float(run(np.ascontiguousarray(np.rot90(image, k, axes=(1, 2))))[0, 0, 0]) for k in range(4)]
    answers.append(float(run(np.ascontiguousarray(image[:, :, ::-1]))[0, 0, 0]))
    assert max(answers) - min(answers) < 1e-4
    plain = compile_group([model], 64, test_time_augmentation=False)
    assert abs(float(plain(image)[0, 0, 0]) - float(plain(np.ascontiguousarray(image[:, ::-1]))[0, 0, 0])) > 1e-3
