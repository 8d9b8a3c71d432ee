"""Micrograph readers: real vendor files against what an independent reader gives (the data's README),
files written by the format libraries themselves, and refusals of what is not one image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classifier.errors import ClassifierError
from classifier.readers import length_in_nm, read_micrograph, read_raw
from tests.conftest import SHARED_DATA

FORMATS = SHARED_DATA / "micrograph_formats"
needs_formats = pytest.mark.skipif(not FORMATS.is_dir(), reason=f"real vendor files not found at {FORMATS}")


@needs_formats
@pytest.mark.parametrize("name", ["dmTest_float32_nonSquare_diffPixelSize.dm3", "dmTest_float32_nonSquare_diffPixelSize.dm4"])
def test_gatan_non_square_image_keeps_rows_columns_and_units_per_axis(name):
    raw = read_raw(FORMATS / name)
    assert raw.data.shape == (64, 128) and raw.data.dtype == np.float32
    assert raw.data.min() == 0 and raw.data.max() == 127 and raw.data.mean() == pytest.approx(63.5)
    assert [length_in_nm(a.scale, a.unit) for a in raw.axes] == pytest.approx([0.2, 1.0])  # 2.0 Å rows, 1.0 nm columns
    m = read_micrograph(FORMATS / name)
    # resampled to square pixels at the finer size: the columns five times as many, the rows as they were
    assert m.pixel_size_nm == pytest.approx(0.2) and m.image.shape == (64, 640)
    assert m.source_pixel_size_nm == pytest.approx((0.2, 1.0)) and "resampled" in m.notes[0]
    # the resampling keeps the content: each source column becomes five columns of (about) the same values
    assert np.allclose(m.image[:, 2::5], raw.data, atol=1.0)


@needs_formats
def test_dm3_and_dm4_of_the_same_image_agree():
    a = read_raw(FORMATS / "dmTest_float32_nonSquare_diffPixelSize.dm3").data
    b = read_raw(FORMATS / "dmTest_float32_nonSquare_diffPixelSize.dm4").data
    assert np.array_equal(a, b)


@needs_formats
def test_velox_emd_camera_image_and_pixel_size():
    m = read_micrograph(FORMATS / "Camera Ceta Imaging Micro.emd")
    assert m.image.shape == (512, 512) and m.format == "Velox EMD"
    assert read_raw(FORMATS / "Camera Ceta Imaging Micro.emd").data.dtype == np.int16
    assert m.image.mean() == pytest.approx(-1.57, abs=0.01)
    assert m.pixel_size_nm == pytest.approx(3.1388, rel=1e-4)


@needs_formats
@pytest.mark.parametrize("name", ["16_STOimage_1.ser", "16_STOimage.emi"])
def test_tia_ser_and_its_emi(name):
    m = read_micrograph(FORMATS / name)
    assert m.image.shape == (1024, 1024) and m.format == "SER"
    assert read_raw(FORMATS / name).data.dtype == np.uint16
    assert m.image.mean() == pytest.approx(18748.3, abs=0.1)
    assert m.pixel_size_nm == pytest.approx(0.0100127, rel=1e-5)  # 1.00127e-11 m


@needs_formats
def test_tia_rows_are_top_first():
    # TIA stores the bottom row first (y up): the file's first stored row is the image's last row
    buf = np.fromfile(FORMATS / "16_STOimage_1.ser", np.uint8)
    offset = np.dtype("<i8" if np.frombuffer(buf, "<u2", 3, 0)[2] >= 0x220 else "<i4")
    first_element = int(np.frombuffer(buf, offset, 1, int(np.frombuffer(buf, offset, 1, 22)[0]))[0])
    stored_first_row = np.frombuffer(buf, "<u2", 1024, first_element + 50)  # after the element's 50-byte header
    image = read_raw(FORMATS / "16_STOimage_1.ser").data[0]
    assert np.array_equal(image[-1], stored_first_row) and not np.array_equal(image[0], stored_first_row)


@needs_formats
def test_mrc_stack_needs_a_frame():
    with pytest.raises(ClassifierError, match=r"temp.mrc: a stack of 3 frames .*choose one with --frame N \(0-2\)"):
        read_micrograph(FORMATS / "temp.mrc")
    frames = [read_micrograph(FORMATS / "temp.mrc", frame=i) for i in range(3)]
    assert all(f.image.shape == (128, 128) and f.pixel_size_nm == pytest.approx(0.2) for f in frames)
    assert not np.array_equal(frames[0].image, frames[1].image)
    assert 0 <= min(f.image.min() for f in frames) and max(f.image.max() for f in frames) <= 1
    assert any("Map ID" in n for n in frames[0].notes)  # the header's defect is stated, not hidden
    with pytest.raises(ClassifierError, match=r"--frame 3: the stack has frames 0-2"):
        read_micrograph(FORMATS / "temp.mrc", frame=3)


@needs_formats
def test_eels_spectrum_is_refused():
    with pytest.raises(ClassifierError, match=r"08_carbon.dm3: a spectrum"):
        read_micrograph(FORMATS / "08_carbon.dm3")


@needs_formats
def test_override_replaces_the_file_pixel_size_and_says_so():
    m = read_micrograph(FORMATS / "16_STOimage_1.ser", pixel_size_nm=0.05)
    assert m.pixel_size_nm == 0.05 and "0.05 nm given" in m.notes[0]


def test_imagej_tiff_pixel_size(tmp_path):
    import tifffile

    data = np.arange(64 * 80, dtype=np.uint16).reshape(64, 80)
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True, resolution=(1 / 0.5, 1 / 0.5), metadata={"unit": "\\u00C5"})  # as ImageJ writes Å
    m = read_micrograph(tmp_path / "ij.tif")
    assert m.pixel_size_nm == pytest.approx(0.05) and np.array_equal(m.image, data)


def test_ome_tiff_pixel_size(tmp_path):
    import tifffile

    data = np.random.default_rng(0).random((48, 40)).astype(np.float32)
    tifffile.imwrite(tmp_path / "a.ome.tif", data, ome=True,
                     metadata={"PhysicalSizeX": 0.064, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 0.064,
                               "PhysicalSizeYUnit": "nm"})
    m = read_micrograph(tmp_path / "a.ome.tif")
    assert m.pixel_size_nm == pytest.approx(0.064) and np.array_equal(m.image, data)


def test_tiff_with_printer_resolution_only_needs_a_pixel_size(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "dpi.tif", np.zeros((32, 32), np.uint8), resolution=(72, 72), resolutionunit="INCH")
    with pytest.raises(ClassifierError, match=r"dpi.tif: the file holds no pixel size .*give --pixel-size-nm"):
        read_micrograph(tmp_path / "dpi.tif")
    assert read_micrograph(tmp_path / "dpi.tif", pixel_size_nm=0.1).pixel_size_nm == 0.1


def test_berkeley_emd_written_per_the_specification(tmp_path):
    import h5py

    data = np.random.default_rng(1).random((3, 40, 50)).astype(np.float32)
    with h5py.File(tmp_path / "b.emd", "w") as f:
        f.attrs["version_major"], f.attrs["version_minor"] = 0, 2
        g = f.create_group("data/image")
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", data=data)
        for i, (n, step, unit) in enumerate([(3, 1.0, "[s]"), (40, 0.12, "[n_m]"), (50, 0.12, "[n_m]")]):
            d = g.create_dataset(f"dim{i + 1}", data=np.arange(n) * step)
            d.attrs["name"], d.attrs["units"] = ["time", "y", "x"][i], unit
    m = read_micrograph(tmp_path / "b.emd", frame=2)
    assert m.image.shape == (40, 50) and m.pixel_size_nm == pytest.approx(0.12)
    assert np.array_equal(m.image, data[2])


def test_velox_layout_with_json_metadata(tmp_path):
    import h5py

    data = np.random.default_rng(2).integers(0, 4000, (30, 20, 1)).astype(np.uint16)
    meta = {"BinaryResult": {"PixelSize": {"width": "6.4e-11", "height": "6.4e-11"}, "PixelUnitX": "m", "PixelUnitY": "m"}}
    with h5py.File(tmp_path / "v.emd", "w") as f:
        g = f.create_group("Data/Image/0123abcd")
        g.create_dataset("Data", data=data)
        text = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        g.create_dataset("Metadata", data=text[:, None])
    m = read_micrograph(tmp_path / "v.emd")
    assert m.image.shape == (30, 20) and m.pixel_size_nm == pytest.approx(0.064)
    assert np.array_equal(m.image, data[:, :, 0])


def test_png_needs_a_pixel_size_and_colour_becomes_grey(tmp_path):
    import imageio.v3 as iio

    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 30, 60, 90
    iio.imwrite(tmp_path / "c.png", rgb)
    with pytest.raises(ClassifierError, match=r"c.png: the file holds no pixel size"):
        read_micrograph(tmp_path / "c.png")
    m = read_micrograph(tmp_path / "c.png", pixel_size_nm=0.064)
    assert m.image.shape == (32, 32) and np.allclose(m.image, 60)


@pytest.mark.parametrize(("content", "suffix", "message"), [
    (b"", ".dm3", "not a DM file"),
    (b"\x00\x00\x00\x03" + b"\x00" * 40, ".dm3", "DM"),
    (b"II" + b"\x00" * 60, ".ser", "not a SER file"),
    (b"not an hdf5 file at all", ".emd", "unreadable EMD file"),
    (b"\x89PNG\r\n\x1a\n broken", ".png", "unreadable PNG file"),
    (b"garbage" * 10, ".mrc", "unreadable MRC file"),
])
def test_corrupt_files_get_one_line_naming_them(tmp_path, content, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(ClassifierError, match=message) as err:
        read_micrograph(path, pixel_size_nm=0.1)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


@needs_formats
def test_truncated_vendor_files_are_refused(tmp_path):
    for name in ["dmTest_float32_nonSquare_diffPixelSize.dm4", "16_STOimage_1.ser", "Camera Ceta Imaging Micro.emd"]:
        data = (FORMATS / name).read_bytes()
        path = tmp_path / name
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(ClassifierError) as err:
            read_micrograph(path)
        assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_reciprocal_units_and_other_refusals(tmp_path):
    import h5py

    with h5py.File(tmp_path / "dp.emd", "w") as f:
        g = f.create_group("data/dp")
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", data=np.zeros((32, 32), np.float32))
        for i in (1, 2):
            d = g.create_dataset(f"dim{i}", data=np.arange(32) * 0.1)
            d.attrs["units"] = "[1/n_m]"
    with pytest.raises(ClassifierError, match="reciprocal length: a diffraction pattern"):
        read_micrograph(tmp_path / "dp.emd")
    np.save(tmp_path / "line.npy", np.zeros(100))
    with pytest.raises(ClassifierError, match="line.npy: a spectrum or line profile"):
        read_micrograph(tmp_path / "line.npy", pixel_size_nm=0.1)
    np.save(tmp_path / "c.npy", np.zeros((32, 32), np.complex64))
    with pytest.raises(ClassifierError, match="complex data"):
        read_micrograph(tmp_path / "c.npy", pixel_size_nm=0.1)
    (tmp_path / "x.xyz").write_text("1")
    with pytest.raises(ClassifierError, match=r"unsupported image type '.xyz'"):
        read_micrograph(tmp_path / "x.xyz")
