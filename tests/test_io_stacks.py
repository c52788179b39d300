"""The stacks microscopes write, opened through io.stack: Micro-Manager's OME-TIFF split over two
files, Picasso's TIFF and .raw movies with their .yaml, ND2 (no library writes ND2: only the
error paths are tested here)."""

import uuid
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from napari_var_emitter.errors import InputError
from napari_var_emitter.io.stack import open_stack

PICASSO = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / "picasso-testdata-sim"


def _micro_manager_dataset(folder: Path, frames: np.ndarray) -> Path:
    """Two files of five frames each, as Micro-Manager splits a long acquisition: each file's
    OME-XML lists every plane and the file (by UUID) that holds it."""
    names = ["run_MMStack_Pos0.ome.tif", "run_MMStack_Pos0_1.ome.tif"]
    uuids = [f"urn:uuid:{uuid.uuid4()}" for _ in names]
    planes = "".join(f'<TiffData FirstT="{5 * i + j}" FirstZ="0" FirstC="0" IFD="{j}" PlaneCount="1">'
                     f'<UUID FileName="{names[i]}">{uuids[i]}</UUID></TiffData>' for i in range(2) for j in range(5))
    for i, name in enumerate(names):
        xml = ('<?xml version="1.0" encoding="UTF-8"?>'
               f'<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="{uuids[i]}">'
               '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="32" '
               'SizeY="32" SizeZ="1" SizeC="1" SizeT="10" PhysicalSizeX="0.108" PhysicalSizeY="0.108">'
               f'<Channel ID="Channel:0:0" SamplesPerPixel="1"/>{planes}</Pixels></Image></OME>')
        with tifffile.TiffWriter(folder / name) as writer:
            for j in range(5):
                writer.write(frames[5 * i + j], description=xml if j == 0 else None, metadata=None)
    return folder / names[0]


def test_a_micro_manager_dataset_split_over_two_files_opens_as_one_stack(tmp_path):
    frames = np.random.default_rng(1).integers(100, 200, (10, 32, 32), dtype=np.uint16)
    stack = open_stack(_micro_manager_dataset(tmp_path, frames))
    assert stack.frames.shape == (10, 32, 32) and stack.camera_metadata == {"pixel_size_nm": 108.0}
    np.testing.assert_array_equal(np.asarray(stack.frames), frames)  # the second file's frames too


@pytest.mark.skipif(not PICASSO.is_dir(), reason="../shared/data/external is not here")
def test_picassos_tiff_movie_takes_the_pixel_size_from_its_yaml():
    stack = open_stack(PICASSO / "testdata.tif")  # written by Picasso (simulate), with its .yaml
    assert stack.frames.shape == (100, 32, 32) and stack.camera_metadata["pixel_size_nm"] == 160.0


def test_a_picasso_raw_movie_and_its_yaml(tmp_path):
    """Written as Picasso's io.save_raw writes one: the frames' bytes, and a .yaml with their layout
    and what Picasso knows of the camera."""
    frames = np.random.default_rng(2).integers(90, 400, (7, 24, 40), dtype=np.uint16)
    frames.tofile(tmp_path / "movie.raw")
    info = {"Byte Order": "<", "Data Type": "uint16", "Frames": 7, "Height": 24, "Width": 40,
            "Camera": "iXon", "Camera.Pixelsize": 130, "Baseline": 100, "Sensitivity": 4.78, "Gain": 200}
    (tmp_path / "movie.yaml").write_text(yaml.dump(info), encoding="utf-8")
    stack = open_stack(tmp_path / "movie.raw")
    np.testing.assert_array_equal(np.asarray(stack.frames), frames)
    assert stack.camera_metadata == {"pixel_size_nm": 130.0, "baseline_adu": 100.0, "e_per_adu": 4.78,
                                     "em_gain": 200.0}
    (tmp_path / "short.raw").write_bytes(frames.tobytes()[:-10])  # truncated: said, not read short
    (tmp_path / "short.yaml").write_text(yaml.dump(info), encoding="utf-8")
    with pytest.raises(InputError, match="truncated or another movie"):
        open_stack(tmp_path / "short.raw")
    (tmp_path / "alone.raw").write_bytes(frames.tobytes())
    with pytest.raises(InputError, match="needs alone.yaml beside it"):
        open_stack(tmp_path / "alone.raw")


def test_an_unreadable_nd2_or_an_unknown_file_is_a_clear_error(tmp_path):
    (tmp_path / "broken.nd2").write_bytes(b"not an nd2 file")
    with pytest.raises(InputError, match="nd2 package|not a readable ND2 file"):
        open_stack(tmp_path / "broken.nd2")
    (tmp_path / "movie.avi").write_bytes(b"")
    with pytest.raises(InputError, match=r"not a stack this program opens \(it opens .tif, .tiff, .raw, .nd2\)"):
        open_stack(tmp_path / "movie.avi")
