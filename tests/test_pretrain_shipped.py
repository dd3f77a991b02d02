"""`pretrain_ensemble --profile shipped` reproduces the shipped ensemble (here with tiny models and tiny sets)."""

import shutil
import time
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from inference import shipped
from inference.models import ModelVersion
from tests.api_fixtures import fresh_ensemble  # noqa: F401


@pytest.fixture
def tiny_recipe(tmp_path, monkeypatch):
    """The shipped recipe with tiny architectures and a few images per set, writing only under tmp_path."""
    directory = tmp_path / "shipped"
    shutil.copytree(shipped.SHIPPED_DIR, directory)
    monkeypatch.setattr(shipped, "SHIPPED_DIR", directory)
    monkeypatch.setattr(shipped, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(shipped, "WORK_DIR", tmp_path / "work")
    # Two chunks per source, as shipped.
    monkeypatch.setattr(shipped, "TRAIN_SETS", {"ours": ((4, 101), (2, 111)), "galsim": ((4, 201), (2, 211))})
    for table, seed in (("VAL_SETS", 2), ("TEST_SETS", 3), ("SIGMA_SETS", 5)):
        monkeypatch.setattr(shipped, table, {"ours": (6, 100 + seed), "galsim": (6, 200 + seed)})
    monkeypatch.setattr(shipped, "CHECK_SETS", {"ours": (2, 104), "galsim": (2, 204)})
    monkeypatch.setattr(
        shipped, "MEMBERS", {name: ("tiny", ["ours", "galsim"], 11) for name in shipped.SHIPPED_MEMBERS}
    )
    monkeypatch.setattr(shipped, "REJECTION_ARCHITECTURE", "tiny")
    small = {
        part: {
            "clean": {source: (3, seed) for source, (_, seed) in table["clean"].items()},
            "junk": {kind: (1, seed) for kind, (_, seed) in table["junk"].items()},
            "face_on_max": table["face_on_max"],
        }
        for part, table in shipped.REJECTION_SETS.items()
    }
    monkeypatch.setattr(shipped, "REJECTION_SETS", small)
    return directory


@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_ensemble")
def test_pretrain_profile_shipped_runs_every_step_resumably_and_activates_the_result(tiny_recipe):
    before = shipped.load_manifest(tiny_recipe)
    args = ["--profile", "shipped", "--minutes-per-member", "0.01", "--rejection-minutes", "0.01"]
    out, err = StringIO(), StringIO()
    call_command("pretrain_ensemble", *args, stdout=out, stderr=err)

    manifest = shipped.verify(tiny_recipe)  # every file matches its new checksum
    assert [m["architecture"] for m in manifest["members"]] == ["tiny"] * 3
    assert [m["sha256"] for m in manifest["members"]] != [m["sha256"] for m in before["members"]]
    assert manifest["rejection"]["architecture"] == "tiny"
    assert manifest["rejection"]["sha256"] != before.get("rejection", {}).get("sha256")
    assert shipped.REPRODUCE_COMMAND in manifest["command"] and shipped.REJECTION_COMMAND in manifest["command"]
    assert "6/6" in err.getvalue() and "Shipped ensemble reproduced" in out.getvalue()
    active = ModelVersion.objects.filter(status="active")
    assert sorted(active.values_list("kind", flat=True)) == ["regression"] * 3 + ["rejection"]
    assert all(v.name.endswith(m["sha256"][:8]) for v, m in zip(active.filter(kind="regression").order_by("name"),
                                                                   manifest["members"], strict=True))  # fmt: skip

    # Run again: every step is done, nothing trains and the files stay.
    err = StringIO()
    call_command("pretrain_ensemble", *args, stdout=StringIO(), stderr=err)
    assert "done earlier" in err.getvalue()
    assert shipped.load_manifest(tiny_recipe)["created"] == manifest["created"]

    # The members' `finish` rewrites the manifest but keeps the rejection classifier's section.
    again = shipped.finish(directory=tiny_recipe)
    assert again["rejection"] == manifest["rejection"]
    shipped.verify(tiny_recipe)


@pytest.mark.django_db
def test_a_member_is_fine_tuned_from_the_shipped_file_at_the_learning_rate_asked_and_the_manifest_says_so(
    tiny_recipe, monkeypatch
):
    shipped_before = {m["name"]: m for m in shipped.load_manifest(tiny_recipe)["members"]}["mixed_vgg_a_haar"]
    shipped.train_member(
        name="mixed_vgg_a_haar",
        architecture="tiny",
        sources=["ours", "galsim"],
        seed=11,
        until=time.time() + 1,
        init="shipped",
        learning_rate=1e-4,
    )

    fitted_on = []
    calibrate = shipped.calibrate_sigma_scale
    monkeypatch.setattr(shipped, "calibrate_sigma_scale", lambda groups: fitted_on.append(groups) or calibrate(groups))
    manifest = shipped.finish(members=("mixed_vgg_a_haar",), directory=tiny_recipe)
    member = manifest["members"][0]
    # The sigma scale saw each source's validation galaxies and its SIGMA_SETS galaxies (6 + 6), recorded.
    assert [len(error) for error, _, _ in fitted_on[0]] == [12, 12]
    assert manifest["data"]["sigma_scale"]["galsim"] == {"n": 6, "seed": 205, "with": "validation"}
    assert manifest["sigma_fit"]["ours"]["n"] == 12 and 0 <= manifest["sigma_fit"]["ours"]["within_1_sigma"] <= 1
    # Started from the shipped file (its parameter count, not a new tiny model's); the rate is in its command.
    assert member["parameters"] == shipped_before["parameters"]
    assert member["fine_tuned_from"]["sha256"] == shipped_before["sha256"]
    assert member["sha256"] != shipped_before["sha256"]
    expected = "train --member mixed_vgg_a_haar --init shipped --learning-rate 0.0001 --until HH:MM"
    assert any(c.endswith(expected) for c in manifest["command"])


def test_each_source_weighs_the_same_in_training_however_many_galaxies_it_has(tiny_recipe, monkeypatch):
    monkeypatch.setattr(shipped, "TRAIN_SETS", {"ours": ((4, 101), (2, 111), (6, 121)), "galsim": ((4, 201),)})
    split = shipped.training_split(["ours", "galsim"])

    assert len(split.target) == 16
    ours, galsim = slice(0, 12), slice(12, 16)
    assert split.weights[ours].sum() == pytest.approx(split.weights[galsim].sum())
    assert split.weights.mean() == pytest.approx(1.0)
    for part in (ours, galsim):  # within a source, every occupied 5-deg bin counts the same
        bins = np.clip((split.target[part] - 45.0) // 5.0, 0, 8)
        totals = [split.weights[part][bins == b].sum() for b in np.unique(bins)]
        assert totals == pytest.approx([totals[0]] * len(totals))
