"""The model on REAL sCMOS STORM frames (storm-analysis, ../shared/data/external/
storm-analysis-scmos-real; validation only, no truth): with the camera as one baseline and gain
(as a user would type it), and with the per-pixel calibration maps.

Per frame: localisations, and those in the 20 hottest pixels (highest read-noise variance),
beside storm-analysis's reference count (70-96 per frame on these frames, from its README);
then the median photons and background per localisation and the out-of-range warnings the CLI
and the widget give.

Run: .venv/bin/python benchmarks/scmos_real.py [--model PATH]
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.tiff import read_stack
from napari_var_emitter.predict import PredictOptions, predict
from napari_var_emitter.predict.envelope import Envelope, bundled_alternatives
from napari_var_emitter.predict.model_cache import cached_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / "storm-analysis-scmos-real"
REFERENCE_PER_FRAME = "70-96"
PIXEL_NM = 160.0


def cameras() -> dict[str, Camera]:
    plain = Camera(pixel_size_nm=PIXEL_NM, baseline_adu=90.4, e_per_adu=1 / 2.11, read_noise_e=1.1, type="sCMOS")
    maps = Camera(pixel_size_nm=PIXEL_NM, baseline_adu=90.4, e_per_adu=1 / 2.11, read_noise_e=1.1, type="sCMOS",
                  offset_map=str(DATA / "calib_offset_ADU.npy"), variance_map=str(DATA / "calib_variance_ADU2.npy"),
                  gain_map=str(DATA / "calib_gain_ADU_per_e.npy"))
    return {"one baseline and gain": plain, "per-pixel maps": maps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="weights (.safetensors); default: bundled")
    args = parser.parse_args()
    frames = np.asarray(read_stack(DATA / "sample_11frames.tif").frames)
    variance = np.load(DATA / "calib_variance_ADU2.npy", allow_pickle=False)
    hottest = np.argsort(variance.ravel())[-20:]
    options = PredictOptions(model=args.model)
    envelope = Envelope.from_card(cached_model(options.model, options.device)[1])
    print(f"{len(frames)} frames {frames.shape[1]}x{frames.shape[2]}; storm-analysis reference: "
          f"{REFERENCE_PER_FRAME} per frame")
    for name, camera in cameras().items():
        table = predict(frames, camera, options).table
        cells = (table["y_nm"] // PIXEL_NM).astype(int) * frames.shape[2] + (table["x_nm"] // PIXEL_NM).astype(int)
        per_frame = table.groupby("frame").size().reindex(range(len(frames)), fill_value=0)
        on_hot = int(np.isin(cells, hottest).sum())
        print(f"\n{name}: {len(table)} localisations, per frame {per_frame.min()}-{per_frame.max()} "
              f"(median {per_frame.median():.0f}): {' '.join(map(str, per_frame))}")
        print(f"  in the 20 hottest pixels: {on_hot}; median photons {table['photons'].median():.0f}, "
              f"background {table['background'].median():.1f} photons/px")
        others = bundled_alternatives(options.weights)
        warnings = (envelope.camera_warnings(camera) + envelope.measured_warnings(table, camera, others)
                    if envelope else [])
        for message in warnings or ["(no out-of-range warning)"]:
            print(f"  warning: {message}")


if __name__ == "__main__":
    main()
