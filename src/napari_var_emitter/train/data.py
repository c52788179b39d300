"""Training batches: camera tiles in photons with their target maps.

Sources: fresh simulations on the fly (`SimulatedSource`), or labelled stacks
(`LabelledSource`: OME-TIFF + emitters.h5 or CSV, e.g. a simulated dataset folder).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import InputError
from ..io.camera import Camera, frames_to_photons, resolve_camera
from ..io.emitters_h5 import read_emitters_h5
from ..io.localizations_csv import read_localizations_csv
from ..io.stack import open_stack
from ..model.condition import calibration_vector
from ..model.config import ModelConfig
from ..model.context import context_reach, with_context
from ..model.targets import render_target
from ..predict.canonical import bin_photons
from ..psf import PSF
from ..simulate.camera_noise import add_uncalibrated_pixel_noise
from ..simulate.config import SimulationConfig, StructureConfig
from ..simulate.stack import simulate_independent_frames, simulate_stack_and_background
from .config import SimulationRanges


@dataclasses.dataclass
class Batch:
    """photons (B, F, H, W): each tile and its context frames (model.config.input_frames); token_map
    and dense_map (B, C, H*up, W*up); background (B, H, W)
    photons/px on the camera grid (NaN when unknown); calibration (B, CALIBRATION_FEATURES): each
    tile's PSF calibration, for a calibration-conditioned model."""

    photons: torch.Tensor
    token_map: torch.Tensor
    dense_map: torch.Tensor
    background: torch.Tensor
    calibration: torch.Tensor | None = None


def tables_per_frame(emitters: pd.DataFrame, n_frames: int) -> list[pd.DataFrame]:
    """The emitters of each frame 0..n_frames-1 (an empty table where a frame has none)."""
    groups = emitters.groupby("frame")
    return [groups.get_group(f) if f in groups.groups else emitters.iloc[:0] for f in range(n_frames)]


def make_batch(photons: np.ndarray, tables: list[pd.DataFrame], background: np.ndarray,
               pixel_size_nm: np.ndarray, config: ModelConfig, calibration: np.ndarray | None = None) -> Batch:
    """Tiles (B, H, W) in photons (or (B, F, H, W) with their context frames), their emitters
    (x_nm, y_nm from the tile's corner), their background (B, H, W) photons/px (NaN where unknown),
    pixel sizes (B,) in nm and, for a conditioned model, calibration vectors (B, CALIBRATION_FEATURES)."""
    tile = photons.shape[-2:]
    maps = {False: [], True: []}
    for table, px in zip(tables, pixel_size_nm, strict=True):
        args = (table["x_nm"].to_numpy() / px, table["y_nm"].to_numpy() / px,
                table["photons"].to_numpy(), table["z_nm"].to_numpy() if "z_nm" in table else
                np.zeros(len(table)), tile, config.upscale, config.with_z)
        for dense in maps:
            maps[dense].append(render_target(*args, dense=dense))
    photons = np.asarray(photons, np.float32)
    return Batch(torch.from_numpy(photons if photons.ndim == 4 else photons[:, None]),
                 torch.from_numpy(np.stack(maps[False])), torch.from_numpy(np.stack(maps[True])),
                 torch.as_tensor(background, dtype=torch.float32),
                 None if calibration is None else torch.as_tensor(calibration, dtype=torch.float32))


FRAMES_PER_CONDITION = 8  # a larger batch mixes several drawn conditions


class SimulatedSource:
    """Fresh simulations: each group of FRAMES_PER_CONDITION frames draws its conditions from
    `ranges` (train.config.SimulationRanges); a model with context frames gets them simulated
    before and after the group's (the same emitters blinking on), or, in the ranges' shares of
    groups, frames simulated each on its own, or single images (each frame its own neighbours)."""

    def __init__(self, ranges: SimulationRanges, config: ModelConfig, tile_px: int, seed: int):
        self.ranges, self.config, self.tile_px = ranges, config, tile_px
        self.rng = np.random.default_rng(seed)

    def simulation_config(self, n_frames: int) -> SimulationConfig:
        r, rng = self.ranges, self.rng
        px = r.draw("pixel_size_nm", rng)
        if rng.uniform() < r.emccd_fraction:
            camera = Camera(pixel_size_nm=px, baseline_adu=100.0, e_per_adu=5.0, em_gain=r.draw("em_gain", rng),
                            read_noise_e=30.0, type="EMCCD")
        else:
            camera = Camera(pixel_size_nm=px, baseline_adu=100.0, e_per_adu=0.5,
                            read_noise_e=r.draw("scmos_read_noise_e", rng), type="sCMOS")
        sigma_nm = r.draw("psf_sigma_px", rng) * px if r.psf_sigma_px else r.draw("psf_sigma_nm", rng)
        structured = rng.uniform() < r.structured_background_fraction
        return SimulationConfig(
            frame_size=self.tile_px, n_frames=n_frames,
            density_per_um2=r.draw("density_per_um2", rng), photons_mean=r.draw("photons_mean", rng),
            background_photons=r.draw("background_photons", rng),
            background_contrast=r.draw("background_contrast", rng) if structured else 1.0,
            psf=self._psf(sigma_nm, r.draw("psf_halo_fraction", rng)), camera=camera,
            structure=StructureConfig(kind=str(rng.choice(r.structures)), **self._structure_scale(px)),
        )

    def _psf(self, sigma_nm: float, halo_fraction: float) -> PSF:
        """The drawn Gaussian PSF, or the astigmatic calibration of a 3-D training (its own widths):
        the one given, or one drawn from the family."""
        if self.ranges.psf_family is not None:
            return dataclasses.replace(self.ranges.psf_family.draw(self.rng), halo_fraction=halo_fraction)
        if self.ranges.psf_calibration is None:
            return PSF(sigma_nm=sigma_nm, halo_fraction=halo_fraction)
        return dataclasses.replace(self.ranges.psf_calibration, halo_fraction=halo_fraction)

    def _structure_scale(self, pixel_size_nm: float) -> dict:
        """Filaments and clusters sized for a tile (a 64-px tile is 4-13 µm across)."""
        field_um = self.tile_px * pixel_size_nm / 1000
        return {"n_filaments": max(1, round(field_um / 2)), "filament_length_nm": 1000.0 * field_um,
                "n_clusters": max(1, round(field_um**2 / 8)), "cluster_sd_nm": float(self.rng.uniform(50, 300))}

    def batch(self, batch_size: int) -> Batch:
        """Groups of up to FRAMES_PER_CONDITION frames, each group with its own conditions."""
        photons, tables, background, pixel_size, calibration = [], [], [], [], []
        k = self.config.context_frames
        for start in range(0, batch_size, FRAMES_PER_CONDITION):
            n = min(FRAMES_PER_CONDITION, batch_size - start)
            single = self.ranges.single_frame_fraction  # each drawn only where used: runs stay reproducible
            single = bool(k and single and self.rng.uniform() < single)
            sim = self.simulation_config(n if single else n + 2 * k)
            independent = self.ranges.independent_frames_fraction
            if single or (k and independent and self.rng.uniform() < independent):
                frames, truth, backgrounds_THW = simulate_independent_frames(sim, self.rng)
            else:
                frames, truth, background_YX = simulate_stack_and_background(sim, self.rng)
                backgrounds_THW = np.broadcast_to(background_YX, frames.shape)
            if sim.camera.type == "sCMOS" and self.rng.uniform() < self.ranges.scmos_pixel_noise_fraction:
                frames = add_uncalibrated_pixel_noise(frames, sim.camera, self.rng)
            frames_photons = sim.camera.adu_to_photons(frames)
            first = 0 if single else k
            photons.append(np.stack([with_context(frame[None], k)[0] for frame in frames_photons]) if single
                           else with_context(frames_photons, k, k, k + n))
            tables += tables_per_frame(truth.emitters, sim.n_frames)[first:first + n]
            background += list(backgrounds_THW[first:first + n])
            pixel_size += [sim.camera.pixel_size_nm] * n
            if self.config.psf_condition:
                calibration += [calibration_vector(sim.psf)] * n
        return make_batch(np.concatenate(photons), tables, np.stack(background), np.asarray(pixel_size),
                          self.config, np.stack(calibration) if calibration else None)


class LabelledSource:
    """Random tiles of labelled stacks: items of ((T, H, W) ADU frames, numpy or dask; their
    emitter table with photons, positions in nm; Camera). With bin_px b, each tile of tile_px
    network pixels covers tile_px * b camera pixels, binned b x b as predict bins them in front of
    the network (predict.canonical)."""

    def __init__(self, items: list[tuple], config: ModelConfig, tile_px: int, seed: int, bin_px: int = 1):
        if not items:
            raise InputError("no labelled stacks given")
        if config.psf_condition:
            raise InputError("a model that takes the PSF calibration as an input trains on simulations of its "
                             "calibration family, not on labelled stacks")
        for frames, labels, _ in items:
            if frames.ndim != 3 or min(frames.shape[1:]) < tile_px * bin_px:
                binned = f" (tiles of {tile_px} px binned {bin_px}x{bin_px})" if bin_px > 1 else ""
                raise InputError(f"labelled stacks must be (T, H, W) with frames of at least {tile_px * bin_px} px"
                                 f"{binned}, got {frames.shape}")
            if "photons" not in labels:
                raise InputError("training labels need photons as well as positions")
        self.items, self.config, self.tile_px, self.bin_px = items, config, tile_px, bin_px
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def from_files(pairs: list[tuple[Path, Path]], config: ModelConfig, tile_px: int, seed: int,
                   camera_overrides: dict | None = None) -> LabelledSource:
        """(stack path, labels path: emitters.h5 or ThunderSTORM CSV with intensities) pairs."""
        items = []
        for stack_path, label_path in pairs:
            stack = open_stack(stack_path)
            if str(label_path).endswith(".csv"):
                labels, file_camera = read_localizations_csv(label_path), {}
            else:
                truth = read_emitters_h5(label_path)
                labels, file_camera = truth.emitters, truth.camera.to_dict()
            camera = resolve_camera(stack.camera_metadata, file_camera, camera_overrides or {},
                                    context=str(stack_path))
            items.append((stack.frames, labels, camera))
        return LabelledSource(items, config, tile_px, seed)

    @staticmethod
    def from_dataset_folder(folder: Path, config: ModelConfig, tile_px: int, seed: int) -> LabelledSource:
        """All samples of a simulated dataset folder (the seeds' layout)."""
        samples = sorted(p for p in Path(folder).glob("sample_*") if (p / "emitters.h5").exists())
        return LabelledSource.from_files([(p / f"{p.name}.ome.tiff", p / "emitters.h5") for p in samples],
                                         config, tile_px, seed)

    def batch(self, batch_size: int) -> Batch:
        tiles, tables, pixels = [], [], []
        for _ in range(batch_size):
            frames, labels, camera = self.items[self.rng.integers(len(self.items))]
            n, height, width = frames.shape
            span = self.tile_px * self.bin_px  # camera pixels
            t, r, c = (self.rng.integers(n), self.rng.integers(height - span + 1), self.rng.integers(width - span + 1))
            first, last = context_reach(t, t + 1, n, self.config.context_frames)
            window = frames_to_photons(np.asarray(frames[first:last, r:r + span, c:c + span]), camera, int(first))
            window = bin_photons(torch.from_numpy(window)[None], self.bin_px)[0].numpy()
            tiles.append(with_context(window, self.config.context_frames, t - first, t - first + 1)[0])
            camera_px = camera.pixel_size_nm
            x0, y0, side = c * camera_px, r * camera_px, span * camera_px  # the tile, nm
            rows = labels[(labels["frame"] == t) & (labels["x_nm"] >= x0) & (labels["x_nm"] < x0 + side)
                          & (labels["y_nm"] >= y0) & (labels["y_nm"] < y0 + side)]
            tables.append(rows.assign(x_nm=rows["x_nm"] - x0, y_nm=rows["y_nm"] - y0))
            pixels.append(camera_px * self.bin_px)
        return make_batch(np.stack(tiles), tables, np.full((batch_size, self.tile_px, self.tile_px), np.nan),
                          np.array(pixels), self.config)
