"""Lattice visibility in the classifier: measured on a noise-free simulated store's images, reported per bin
by evaluate, used by training's --min-visibility, and absent (with a clear refusal) where it cannot be measured."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.card import write_card
from classifier.data import Preprocessing, load_cutouts
from classifier.errors import ClassifierError
from classifier.evaluate import evaluate
from classifier.train import TrainConfig, train
from datagen.recipe import parse_recipe
from datagen.run import generate
from datagen.store import open_samples
from datagen.visibility import MIN_REFERENCE, bin_names, peak_ratios, visibility

#: 36 amorphous particles (more than MIN_REFERENCE, the reference) and 12 crystals, noise-free, 0.05 nm/px.
SIM = {
    "format": 1, "name": "simvis", "version": "1.0.0", "description": "tiny simulated catalog with a reference",
    "generator": "simulation", "seed": 4, "chunk_size": 8,
    "classes": {"amorphous": 36, "monocrystalline": 6, "polycrystalline": 6},
    "simulation": {
        "particle": {"diameter_nm": [1.2, 1.8],
                     "kinds": {"amorphous": {"amorphous": 1}, "monocrystalline": {"cuboctahedron": 1},
                               "polycrystalline": {"icosahedron": 1}}},
        "support": {"thickness_nm": [0.5, 0.8]},
        "box_nm": [3.5, 3.5, 3.5],
        "optics": {"defocus_nm": [-4, 0]},
        "detector": {"pixel_size_nm": 0.05},
        "numerics": {"sampling_A": 0.2},
    },
}


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory):
    assert SIM["classes"]["amorphous"] > MIN_REFERENCE
    path = tmp_path_factory.mktemp("simvis") / "simvis.zarr"
    generate(parse_recipe(SIM), path, workers=0)
    return path


def test_visibility_is_measured_on_the_whole_store_whichever_split_is_read(sim_store):
    prep = Preprocessing(size=32)
    everything = load_cutouts(sim_store, "all", "three", prep)
    test = load_cutouts(sim_store, "test", "three", prep)
    assert np.isfinite(everything.visibility).all()
    # the same sample has the same visibility in either read: the reference is the store's amorphous particles
    np.testing.assert_array_equal(test.visibility, everything.visibility[test.index])
    # and it is the peak ratio over the amorphous reference, computed here from the images directly
    ds = open_samples(sim_store)
    r = peak_ratios(ds.image.values, ds.mask.values, ds.pixel_size_nm.values, "Au")
    amorphous = ds.label.values == 0
    expected = visibility(r, ds.diameter_nm.values, r[amorphous], ds.diameter_nm.values[amorphous])
    np.testing.assert_allclose(everything.visibility, expected[everything.index])
    # amorphous particles lie below 1 but for about 1 %; crystals mostly above
    assert (everything.visibility[everything.y == 0] < 1).mean() > 0.9
    assert np.median(everything.visibility[everything.y > 0]) > 1


def test_evaluate_reports_accuracy_per_visibility_bin_and_training_can_drop_invisible_lattices(sim_store, tmp_path,
                                                                                               one_torch_thread):
    config = TrainConfig(arch="resnet18", mode="two", size=32, epochs=1, batch_size=8, seed=0, min_visibility=2.0)
    result = train([sim_store], tmp_path / "m.pt", config, progress=False)
    train_all = load_cutouts(sim_store, "train", "two", Preprocessing(size=32))
    dropped = int(((train_all.y == 1) & (train_all.visibility < 2)).sum())
    assert 0 < dropped < (train_all.y == 1).sum()
    assert result.info.training["n_train"] == len(train_all) - dropped
    assert result.info.training["min_visibility"] == 2.0

    ev = evaluate(tmp_path / "m.pt", [sim_store], split="all")
    s = ev.summary()
    bins = s["by_visibility"]
    assert list(bins) == bin_names()
    assert sum(b["n"] for b in bins.values()) == s["n"] == s["visibility_measured"]
    right = ev.report.y_pred == ev.report.y_true
    vis = ev.cutouts.visibility
    for name, lo, hi in zip(bin_names(), (0, 1, 3, 10), (1, 3, 10, np.inf)):
        sel = (vis >= lo) & (vis < hi)
        assert bins[name]["n"] == sel.sum()
        if sel.any():
            assert bins[name]["accuracy"] == pytest.approx(right[sel].mean())
    clear = (ev.report.y_true == 0) | (vis >= 1)
    assert s["n_clear"] == clear.sum() and s["accuracy_clear"] == pytest.approx(right[clear].mean())
    paths = ev.write(tmp_path / "ev")
    rows = paths["predictions"].read_text().splitlines()
    assert rows[0].endswith(",visibility") and all(r.rsplit(",", 1)[1] for r in rows[1:])

    # the model card: the training data with its hash, and the report's rows per visibility bin
    card = write_card(tmp_path / "m.pt", [tmp_path / "ev"], tmp_path / "m.md", rebuild="make x").read_text()
    assert f"`simvis` 1.0.0, content sha256 `{ev.cutouts.sources[0].content_sha256}`" in card
    assert f"{result.info.training['n_train']} training" in card and "visibility under 2" in card
    for name, b in bins.items():
        assert f"| {name} | " in card and f"| {b['n']} | " in card
    assert card.count("\n| amorphous | ") == 2 and "`make x`" in card  # one report: a class row and a confusion row
    cm = s["confusion"]
    assert f"| crystalline | {cm[1][0]} | {cm[1][1]} |" in card
    with pytest.raises(ClassifierError, match="m.md exists"):
        write_card(tmp_path / "m.pt", [], tmp_path / "m.md")


def test_patterns_have_no_visibility_and_min_visibility_says_so(pattern_store, tmp_path):
    cut = load_cutouts(pattern_store, "test", "three", Preprocessing(size=32))
    assert cut.visibility is None
    config = TrainConfig(size=32, epochs=1, batch_size=8, min_visibility=1.0)
    with pytest.raises(ClassifierError, match="clf has no lattice visibility"):
        train([pattern_store], tmp_path / "m.pt", config, progress=False)
    assert not (tmp_path / "m.pt").exists()
