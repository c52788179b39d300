import numpy as np
import pytest
import tifffile

from napari_var_emitter.errors import InputError
from napari_var_emitter.io.camera import Camera, resolve_camera
from napari_var_emitter.io.tiff import read_stack, write_ome_tiff

CAMERA = Camera(pixel_size_nm=117.0, baseline_adu=398.6, e_per_adu=4.81, em_gain=150.0, qe=0.95,
                read_noise_e=34.0, type="EMCCD")


def test_round_trip_with_camera(tmp_path, small_stack):
    frames, _ = small_stack
    path = tmp_path / "s.ome.tiff"
    write_ome_tiff(path, frames, CAMERA)
    stack = read_stack(path)
    assert stack.frames.shape == frames.shape and stack.frames.chunksize[0] == 1  # lazy, per frame
    np.testing.assert_array_equal(stack.frames.compute(), frames)
    assert resolve_camera(stack.camera_metadata) == CAMERA


def test_ome_xml_is_valid_and_tifffile_reads_it(tmp_path, small_stack):
    ome_types = pytest.importorskip("ome_types")
    path = tmp_path / "s.ome.tiff"
    write_ome_tiff(path, small_stack[0], CAMERA)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and tif.series[0].axes == "TYX"
        ome = ome_types.from_xml(tif.ome_metadata, validate=True)
    pixels = ome.images[0].pixels
    assert (pixels.size_t, pixels.size_y, pixels.size_x) == small_stack[0].shape
    assert pixels.physical_size_x == 117.0 and pixels.physical_size_x_unit.value == "nm"
    assert ome.instruments[0].detectors[0].amplification_gain == 150.0


def test_napari_opens_written_stack(tmp_path, small_stack, make_napari_viewer):
    path = tmp_path / "s.ome.tiff"
    write_ome_tiff(path, small_stack[0], CAMERA)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari")
    assert layers[0].data.shape == small_stack[0].shape
    np.testing.assert_array_equal(np.asarray(layers[0].data[3]), small_stack[0][3])


def test_write_is_atomic_on_bad_input(tmp_path):
    path = tmp_path / "keep.ome.tiff"
    path.write_bytes(b"precious")
    with pytest.raises(InputError, match="uint16 or float32"):
        write_ome_tiff(path, np.zeros((2, 8, 8), np.int64), Camera())
    with pytest.raises(InputError, match=r"\(T, Y, X\)"):
        write_ome_tiff(path, np.zeros((8, 8), np.uint16), Camera())
    assert path.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.ome.tiff"]


@pytest.mark.parametrize("shape, axes, expected", [
    ((32, 40), "YX", (1, 32, 40)),
    ((5, 32, 40), "ZYX", (5, 32, 40)),
    ((6, 1, 1, 32, 40), "TZCYX", (6, 32, 40)),
])
def test_axis_rule(tmp_path, shape, axes, expected):
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, np.ones(shape, np.uint16), ome=True, metadata={"axes": axes})
    assert read_stack(path).frames.shape == expected


@pytest.mark.parametrize("shape, axes, message", [
    ((4, 2, 32, 40), "TCYX", "2 non-spatial axes"),
    ((32, 40, 3), "YXS", "RGB"),
])
def test_axis_errors(tmp_path, shape, axes, message):
    path = tmp_path / "a.ome.tif"
    photometric = "rgb" if "S" in axes else "minisblack"
    tifffile.imwrite(path, np.ones(shape, np.uint8), ome=True, metadata={"axes": axes},
                     photometric=photometric)
    with pytest.raises(InputError, match=message):
        read_stack(path)


def test_truncated_file(tmp_path, small_stack):
    path = tmp_path / "s.ome.tiff"
    write_ome_tiff(path, small_stack[0], Camera())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        read_stack(path)


def test_truncated_compressed_file_loses_no_frame_silently(tmp_path, small_stack):
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, small_stack[0], compression="zlib", photometric="minisblack")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        read_stack(path)


@pytest.mark.parametrize("content", [b"", b"not a tiff at all", b"II*\x00\xff\xff\xff\x7f"])
def test_not_a_tiff(tmp_path, content):
    path = tmp_path / "bad.tif"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a readable TIFF"):
        read_stack(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_stack(tmp_path / "nope.tif")


def test_plain_tiff_has_no_metadata_and_defaults_warn(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.ones((5, 16, 16), np.uint16), photometric="minisblack")
    stack = read_stack(path)
    assert stack.camera_metadata == {}
    with pytest.warns(UserWarning, match="pixel_size_nm=100.0"):
        resolve_camera(stack.camera_metadata, context=str(path))


def test_imagej_pixel_size(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, np.ones((3, 16, 16), np.uint16), imagej=True,
                     resolution=(1 / 0.16, 1 / 0.16), metadata={"unit": "um", "axes": "TYX"})
    assert read_stack(path).camera_metadata["pixel_size_nm"] == pytest.approx(160.0)


def test_non_square_pixels(tmp_path):
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, np.ones((2, 8, 8), np.uint16), ome=True,
                     metadata={"axes": "TYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.2})
    with pytest.raises(InputError, match="non-square"):
        read_stack(path)
