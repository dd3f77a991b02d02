"""The Haar stem: a shipped member rebuilt with it answers exactly as before, and fine-tuning can then use the
detail its average-pooling stem dropped."""

import numpy as np

from inference.architectures import build_sigma_regression_model, haar_kernel, with_haar_stem
from inference.ensemble import load_keras_file


def trained_like(architecture: str):
    """A member of `architecture` with every weight random (the zero-initialised heads of a fresh model would
    answer one constant, which any rebuilt model matches)."""
    model = build_sigma_regression_model(architecture, name="member")
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([w + rng.normal(0.0, 0.1, w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


def test_the_haar_stem_keeps_every_pixel_of_each_2x2_block():
    """Its first three channels are the pooling stem's averages; with the other nine the block comes back whole."""
    rng = np.random.default_rng(1)
    image = rng.random((2, 2, 3)).astype(np.float32)
    kernel = haar_kernel(3)
    out = np.einsum("yxc,yxck->k", image, kernel)
    assert np.allclose(out[:3], image.mean(axis=(0, 1)))
    basis = kernel.reshape(12, 12)  # (pixel, colour) x output: orthogonal, up to the 1/4
    assert np.allclose(basis.T @ basis, np.eye(12) / 4.0)


def test_a_member_rebuilt_with_the_haar_stem_answers_exactly_as_before_and_loads_without_custom_objects(tmp_path):
    model = trained_like("vgg_b")
    images = np.random.default_rng(2).random((8, 128, 128, 3)).astype(np.float32)
    before = model.predict(images, verbose=0)
    assert before[:, 0].std() > 0.1  # answers that differ from image to image

    wide = with_haar_stem(model, "vgg_b_haar", name="member_haar")

    assert wide.get_layer("stem_haar").kernel.shape == (2, 2, 3, 12)
    assert wide.get_layer("block0_conv0").kernel.shape[2] == 12
    assert np.allclose(wide.predict(images, verbose=0), before, atol=1e-3)
    wide.save(tmp_path / "member_haar.keras")
    again = load_keras_file(str(tmp_path / "member_haar.keras"))
    assert np.allclose(again.predict(images, verbose=0), before, atol=1e-3)
    # The detail channels start unread: fine-tuning, not the rebuild, decides what they are worth.
    assert not np.any(wide.get_layer("block0_conv0").get_weights()[0][:, :, 3:])
