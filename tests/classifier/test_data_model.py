"""The classifier's building blocks: class mapping, augmentation, the network and its model file, and
cut-out loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models import resnet18

from classifier.augment import Augmentation
from classifier.classes import class_names, map_labels
from classifier.data import DatasetRef, Preprocessing, concatenate, load_cutouts
from classifier.errors import ClassifierError
from classifier.model import build_model
from classifier.modelfile import ModelInfo, load_model, read_info, save_model
from datagen.cutout import cutout
from datagen.store import open_samples

MEANINGS = "amorphous monocrystalline polycrystalline"


# --- classes -------------------------------------------------------------------------------------------

def test_labels_map_by_name_not_by_code():
    labels = np.array([0, 1, 2, 2, 0])
    assert map_labels(labels, [0, 1, 2], MEANINGS, "three").tolist() == [0, 1, 2, 2, 0]
    # a dataset that numbers its classes in another order
    assert map_labels(labels, [0, 1, 2], "polycrystalline amorphous monocrystalline", "three").tolist() == [2, 0, 1, 1, 2]
    assert map_labels(labels, [0, 1, 2], MEANINGS, "two").tolist() == [0, 1, 1, 1, 0]
    assert class_names("two") == ("amorphous", "crystalline")


def test_label_mapping_errors_name_the_culprit():
    with pytest.raises(ClassifierError, match="dataset class 'quasicrystal'"):
        map_labels(np.array([0]), [0, 1], "amorphous quasicrystal", "three")
    with pytest.raises(ClassifierError, match="values outside flag_values"):
        map_labels(np.array([3]), [0, 1, 2], MEANINGS, "three")
    with pytest.raises(ClassifierError, match="unknown class mode 'four'"):
        class_names("four")


# --- augmentation --------------------------------------------------------------------------------------

def _d4(img: torch.Tensor) -> list[torch.Tensor]:
    rots = [torch.rot90(img, k, (-2, -1)) for k in range(4)]
    return rots + [r.flip(-1) for r in rots]


def test_dihedral_augmentation_draws_every_symmetry_of_the_square_and_nothing_else():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(400, 1, 1, 1)
    aug = Augmentation(dihedral=True, contrast=(1.0, 1.0), noise_sigma=(0.0, 0.0))
    out = aug(x, torch.Generator().manual_seed(0))
    images = _d4(x[0])
    which = [next(k for k, im in enumerate(images) if torch.equal(o, im)) for o in out]  # raises if none fits
    counts = np.bincount(which, minlength=8)
    assert (counts > 25).all(), counts  # each of the 8 elements about 50 times


def test_augmentation_off_is_identity_and_noise_has_the_drawn_size():
    x = torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    assert torch.equal(Augmentation.none()(x), x)
    noisy = Augmentation(dihedral=False, contrast=(1.0, 1.0), noise_sigma=(0.5, 0.5))(x, torch.Generator().manual_seed(3))
    assert (noisy - x).std().item() == pytest.approx(0.5, rel=0.05)


def _only(**kw) -> Augmentation:
    return Augmentation(**{**dict(dihedral=False, contrast=(1.0, 1.0), noise_sigma=(0.0, 0.0)), **kw})


def test_rotation_by_any_angle_and_scaling_keep_the_particle_and_change_its_extent():
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    bar = ((yy - 31.5).abs() < 3) & ((xx - 31.5).abs() < 20)  # a horizontal bar, 40 x 6 px
    x = bar.float().view(1, 1, 64, 64).repeat(300, 1, 1, 1)
    out = _only(rotation=True)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out.sum((-2, -1)), x.sum((-2, -1)), rtol=0.03)  # area kept (bilinear, inside the frame)
    # the bar's orientation, from its second moments, spreads over all angles, not only multiples of 90 degrees
    w = out[:, 0].clamp_min(0)
    m = w.sum((-2, -1))
    cy, cx = (w * yy).sum((-2, -1)) / m, (w * xx).sum((-2, -1)) / m
    myy = (w * (yy - cy.view(-1, 1, 1)) ** 2).sum((-2, -1)) / m
    mxx = (w * (xx - cx.view(-1, 1, 1)) ** 2).sum((-2, -1)) / m
    mxy = (w * (yy - cy.view(-1, 1, 1)) * (xx - cx.view(-1, 1, 1))).sum((-2, -1)) / m
    angle = torch.rad2deg(0.5 * torch.atan2(2 * mxy, mxx - myy)) % 180
    counts = np.histogram(angle.numpy(), bins=6, range=(0, 180))[0]
    assert (counts > 25).all(), counts  # about 50 in each 30-degree bin
    zoom = _only(scale=(1.5, 1.5))(x[:1])
    assert zoom.sum().item() == pytest.approx(1.5**2 * x[0].sum().item(), rel=0.05)


def test_blur_and_mtf_multiply_the_spectrum_by_their_transfer_functions():
    x = torch.zeros(1, 1, 64, 64)
    x[0, 0, 32, 32] = 1.0  # a point: its image is the point-spread function
    psf = _only(blur_sigma_px=(1.5, 1.5))(x)[0, 0]
    yy, xx = torch.meshgrid(torch.arange(64.0) - 32, torch.arange(64.0) - 32, indexing="ij")
    assert psf.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert ((psf * yy * yy).sum() / psf.sum()).item() == pytest.approx(1.5**2, rel=0.01)  # variance sigma^2
    noise = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    out = _only(mtf_q0=(0.5, 0.5), mtf_c=0.2)(noise)
    ratio = (torch.fft.rfft2(out).abs() / torch.fft.rfft2(noise).abs())[0, 0]
    q = 2 * np.hypot(*np.meshgrid(np.fft.fftfreq(64), np.fft.rfftfreq(64), indexing="ij"))
    assert np.allclose(ratio.numpy(), 0.8 / (1 + (q / 0.5) ** 2) + 0.2, atol=1e-4)


def test_dose_noise_grows_with_the_intensity():
    x = torch.zeros(200, 1, 32, 32)
    x[:, :, :, 16:] = 3.0  # a dark half and a bright half
    out = _only(shot_noise=(0.5, 0.5))(x, torch.Generator().manual_seed(4))
    d = out - x
    dark, bright = d[..., 1:16].var().item(), d[..., 16:].var().item()
    assert dark < 1e-6 < bright  # no signal above the minimum: no noise; variance follows the intensity
    assert bright == pytest.approx(0.25 * 2.0, rel=0.05)  # s^2 * I / mean I = 0.25 * 3 / 1.5
    assert Augmentation.paper() != Augmentation() and Augmentation.paper().rotation


# --- model and model file ------------------------------------------------------------------------------

def test_one_channel_resnet_gives_one_output_per_class():
    torch.manual_seed(0)
    model = build_model("resnet18", 2).eval()
    assert model.conv1.in_channels == 1
    with torch.no_grad():
        assert model(torch.randn(3, 1, 64, 64)).shape == (3, 2)
    with pytest.raises(ClassifierError, match="unknown architecture 'resnet7'"):
        build_model("resnet7", 3)


def test_rgb_weights_file_starts_the_grey_network(tmp_path):
    torch.manual_seed(0)
    rgb = resnet18(num_classes=1000)  # as ImageNet weights come: three channels, 1000 classes
    torch.save(rgb.state_dict(), tmp_path / "rgb.pth")
    grey = build_model("resnet18", 3, weights=tmp_path / "rgb.pth")
    torch.testing.assert_close(grey.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))
    torch.testing.assert_close(grey.layer3[1].conv2.weight, rgb.layer3[1].conv2.weight)
    assert grey.fc.out_features == 3
    with pytest.raises(ClassifierError, match=r"rgb.pth: does not fit ResNet"):
        build_model("resnet50", 3, weights=tmp_path / "rgb.pth")
    (tmp_path / "junk.pth").write_text("not torch")
    with pytest.raises(ClassifierError, match="junk.pth: not a readable torch weights file"):
        build_model("resnet18", 3, weights=tmp_path / "junk.pth")


def test_model_file_round_trip_and_refusals(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet18", 3).eval()
    ref = DatasetRef("clf", "1.0.0", "ab" * 32, "/x/clf.zarr")
    info = ModelInfo(arch="resnet18", classes=class_names("three"), mode="three",
                     preprocessing=Preprocessing(64, 0.15), threshold=0.75, datasets=[ref])
    path = save_model(tmp_path / "m.pt", model, info)
    loaded, back = load_model(path)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert back.classes == info.classes and back.threshold == 0.75 and back.datasets == [ref]
    assert back.preprocessing == Preprocessing(64, 0.15) and back.software["torch"]
    with pytest.raises(ClassifierError, match="m.pt exists; pass --force"):
        save_model(path, model, info)
    before = path.read_bytes()
    (tmp_path / "t.pt").write_bytes(before[: len(before) // 2])
    with pytest.raises(ClassifierError, match="t.pt: not a readable model file"):
        read_info(tmp_path / "t.pt")
    (tmp_path / "empty.pt").write_bytes(b"")  # a 0-byte file (a full disk at the first write) is one line too
    with pytest.raises(ClassifierError, match=r"empty.pt: not a readable model file \(\w+"):
        read_info(tmp_path / "empty.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ClassifierError, match="other.pt: not a classifier model file"):
        read_info(tmp_path / "other.pt")
    assert path.read_bytes() == before


# --- data ----------------------------------------------------------------------------------------------

def test_cutouts_of_a_split_come_from_the_store_through_the_shared_cutout(pattern_store):
    ds = open_samples(pattern_store)
    prep = Preprocessing(48, 0.1)
    test = load_cutouts(pattern_store, "test", "three", prep)
    expected = np.flatnonzero(ds.split.values == "test")
    assert test.index.tolist() == expected.tolist() and test.x.shape == (len(expected), 48, 48)
    assert test.y.tolist() == ds.label.values[expected].tolist()
    k = len(expected) // 2
    i = int(expected[k])
    np.testing.assert_array_equal(test.x[k], cutout(ds.image.values[i], ds["mask"].values[i], 48, margin=0.1))
    assert test.sources[0].name == "clf" and test.sources[0].content_sha256 == ds.attrs["content_sha256"]
    every = sum(len(load_cutouts(pattern_store, s, "two", prep)) for s in ("train", "val", "test"))
    assert every == ds.sizes["sample"] == len(load_cutouts(pattern_store, "all", "two", prep))
    with pytest.raises(ClassifierError, match="unknown split 'dev'"):
        load_cutouts(pattern_store, "dev", "three", prep)
    with pytest.raises(ClassifierError, match="size: input size must be an integer from 16"):
        Preprocessing(8)


def test_cutouts_of_several_datasets_keep_their_origin(pattern_store):
    a = load_cutouts(pattern_store, "train", "three", Preprocessing(32))
    b = load_cutouts(pattern_store, "test", "three", Preprocessing(32))
    both = concatenate([a, b])
    assert len(both) == len(a) + len(b) and len(both.sources) == 2
    assert both.origin.tolist() == [0] * len(a) + [1] * len(b)
    np.testing.assert_array_equal(both.x[len(a):], b.x)
    assert both.index[len(a):].tolist() == b.index.tolist()
    with pytest.raises(ClassifierError, match="differ in classes or size"):
        concatenate([a, load_cutouts(pattern_store, "test", "three", Preprocessing(48))])
