"""`var-emitter` commands after localisation: drift, merge, resolution, render, stats. Each
reads a table in any layout `read_localizations` takes and calls the plain API in analysis/."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .errors import InputError
from .io.localizations import read_localizations, write_localizations

TABLE_HELP = "localisations: ours / ThunderSTORM / SMLM challenge CSV, our or Picasso HDF5"


def add_analysis_commands(commands) -> None:
    """Add the analysis sub-commands to the `var-emitter` sub-parser collection."""
    drift = commands.add_parser(
        "drift", help="correct stage drift (redundant cross-correlation, or fiducials)",
        description="Estimate the stage drift by redundant cross-correlation (RCC) of images of frame segments, "
        "or from fiducials, and write the corrected table and the trajectory (LOCS_DC's name with .drift.csv; "
        "frame 1-based, dx/dy in nm, mean 0 over the movie).")
    _table_argument(drift)
    drift.add_argument("--out", type=Path, required=True, help="the corrected table (.csv or .h5)")
    drift.add_argument("--segment-frames", type=int,
                       help="frames per RCC segment (default: chosen from the movie's frames and localisations, "
                            "and longer while the segments disagree: docs/analysis.md)")
    drift.add_argument("--pixel-nm", type=float, default=20.0,
                       help="pixel of the segment images [nm] (default %(default)g)")
    drift.add_argument("--max-drift-nm", type=float, default=1000.0,
                       help="largest drift between two segments searched for [nm]")
    drift.add_argument("--fiducial", action="append", default=[], metavar="X_NM,Y_NM",
                       help="a fiducial's position in nm (repeatable): drift from fiducials instead of RCC")
    drift.add_argument("--fiducial-radius-nm", type=float, default=500.0,
                       help="localisations this close to a fiducial belong to it [nm]")
    drift.add_argument("--plot", type=Path, help="save the trajectory as PNG")
    drift.set_defaults(run=_drift, writes="table")

    merge = commands.add_parser(
        "merge", help="merge the localisations of one blink in consecutive frames",
        description="Link localisations in consecutive frames (gaps up to --max-gap) and merge each blink: "
        "position weighted by 1/uncertainty², photons summed, first frame, last frame and count as columns.")
    _table_argument(merge)
    merge.add_argument("--out", type=Path, required=True, help="the merged table (.csv or .h5)")
    merge.add_argument("--radius-nm", type=float,
                       help="linking radius [nm] (default: 3.5 x the combined uncertainty of the localisation "
                            "and the blink so far)")
    merge.add_argument("--max-gap", type=int, default=1,
                       help="frames a blink may go unseen and continue (default %(default)s)")
    merge.set_defaults(run=_merge, writes="table")

    res = commands.add_parser(
        "resolution", help="localisation precision (NeNA) and image resolution (FRC)",
        description="NeNA precision from nearest neighbours in adjacent frames, and FRC resolution from two "
        "halves of the localisations (1/7 threshold).")
    _table_argument(res)
    res.add_argument("--frc-pixel-nm", type=float, default=5.0,
                     help="pixel of the FRC images [nm] (default %(default)g)")
    res.add_argument("--json", action="store_true", help="print JSON")
    res.add_argument("--plot", type=Path, help="save the NeNA fit and the FRC curve as PNG")
    res.set_defaults(run=_resolution)

    render = commands.add_parser(
        "render", help="super-resolution image as TIFF (pixel size recorded), optionally coloured",
        description="Render each localisation as a Gaussian of its own uncertainty (or one --sigma-nm, or a "
        "histogram), optionally coloured by frame or z, and write an ImageJ TIFF whose resolution gives the "
        "pixel size.")
    _table_argument(render)
    render.add_argument("--out", type=Path, required=True, help="TIFF (.tif)")
    render.add_argument("--pixel-nm", type=float, default=10.0, help="render pixel [nm] (default %(default)g)")
    render.add_argument("--method", choices=("gaussian", "histogram"), default="gaussian",
                        help="each localisation a Gaussian (default), or a count per pixel")
    render.add_argument("--sigma-nm", type=float, help="one blur for all [nm] (default: each one's uncertainty)")
    render.add_argument("--colour-by", choices=("frame", "z"), help="colour (RGB) by frame or z")
    render.add_argument("--first-frame", type=int, help="render from this frame (1-based)")
    render.add_argument("--last-frame", type=int, help="render up to this frame (1-based, included)")
    render.add_argument("--scale-bar-nm", type=float,
                        help="burn in a scale bar of this length [nm] (0: a round fifth of the width)")
    render.set_defaults(run=_render, writes="tiff")

    stats = commands.add_parser(
        "stats", help="localisations per frame, photon, uncertainty (and z) distributions, bleaching",
        description="Counts per frame, medians and quartiles of photons, uncertainty, background and "
        "probability, and the bleaching curve fitted with A·exp(−t/τ) + C.")
    _table_argument(stats)
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.add_argument("--plot", type=Path, help="save the plots as PNG")
    stats.set_defaults(run=_stats)


def _table_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", type=Path, metavar="LOCS", help=TABLE_HELP)
    parser.add_argument("--pixel-size", type=float, help="nm, for Picasso HDF5 files without their .yaml")


def _save_plot(draw, path: Path, *items) -> None:
    from matplotlib.figure import Figure

    from .analysis.plots import save_png

    figure = Figure(figsize=(6, 4.5))
    draw(figure, *items)
    save_png(figure, path)


def _drift(args) -> int:
    from .analysis.drift import apply_drift, drift_csv_path, fiducial_drift, rcc_drift, write_drift_csv
    from .analysis.plots import draw_drift

    from .io.outputs import check_outputs

    trajectory = Path(drift_csv_path(args.out))
    check_outputs([args.table, args.out, args.plot], {"the trajectory file": trajectory}, args.overwrite)
    table = read_localizations(args.table, args.pixel_size)
    if args.fiducial:
        try:
            fiducials = np.array([[float(v) for v in f.split(",")] for f in args.fiducial])
        except ValueError as exc:
            raise InputError(f"--fiducial takes X_NM,Y_NM ({exc})") from exc
        if fiducials.shape[1] != 2:
            raise InputError("--fiducial takes X_NM,Y_NM")
        drift = fiducial_drift(table, fiducials, args.fiducial_radius_nm)
    else:
        drift = rcc_drift(table, args.segment_frames, args.pixel_nm, args.max_drift_nm)
    write_localizations(args.out, apply_drift(table, drift))
    write_drift_csv(trajectory, drift)
    if args.plot:
        _save_plot(draw_drift, args.plot, drift)
    print(f"{drift.summary()}\ncorrected: {args.out}\ntrajectory: {trajectory}")
    return 0


def _merge(args) -> int:
    from .analysis.merge import merge_blinks

    table = read_localizations(args.table, args.pixel_size)
    merged = merge_blinks(table, args.radius_nm, args.max_gap)
    write_localizations(args.out, merged)
    print(f"merged {len(table)} localisations into {len(merged)} blinks "
          f"(mean {len(table) / max(len(merged), 1):.2f} per blink) -> {args.out}")
    return 0


def _resolution(args) -> int:
    from .analysis.plots import draw_resolution
    from .analysis.resolution import frc, frc_text, nena, nena_text

    table = read_localizations(args.table, args.pixel_size)
    precision = nena(table)
    curve = frc(table, args.frc_pixel_nm)

    def number(value: float, digits: int) -> float | None:
        return round(value, digits) if np.isfinite(value) else None

    report = {"nena_nm": round(precision.precision_nm, 3), "nena_sd_nm": number(precision.precision_sd_nm, 3),
              "frc_resolution_nm": number(curve.resolution_nm, 2),
              "frc_resolution_sd_nm": number(curve.resolution_sd_nm, 2), "frc_settled": curve.settled,
              "nena_pairs": int(precision.distances_nm.size), "frc_pixel_nm": curve.pixel_nm,
              "localizations": len(table)}
    if args.plot:
        _save_plot(draw_resolution, args.plot, precision, curve)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"NeNA precision: {nena_text(precision)} ({report['nena_pairs']:,} neighbour pairs)\n"
              f"FRC resolution: {frc_text(curve)}; {len(table):,} localisations, {curve.pixel_nm:g} nm pixels")
    return 0


def _render(args) -> int:
    from .analysis.render import add_scale_bar, colour_limits, field_of, frame_range, render, render_coloured
    from .io.tiff import write_image_tiff

    for option, frame in (("--first-frame", args.first_frame), ("--last-frame", args.last_frame)):
        if frame is not None and frame < 1:
            raise InputError(f"{option} {frame}: frames are counted from 1 (the first frame is 1)")
    table = read_localizations(args.table, args.pixel_size)
    first = None if args.first_frame is None else args.first_frame - 1
    last = None if args.last_frame is None else args.last_frame - 1
    table = frame_range(table, first, last)
    shape = field_of(table)
    colours = ""
    if args.colour_by:
        column = "z_nm" if args.colour_by == "z" else "frame"
        image = render_coloured(table, shape, args.pixel_nm, column, args.method, args.sigma_nm)
        low, high = colour_limits(table, column)
        colours = (f", coloured by z from blue ({low:+.0f} nm) to red ({high:+.0f} nm)" if column == "z_nm"
                   else f", coloured by frame from blue (frame {low + 1:,.0f}) to red (frame {high + 1:,.0f})")
    else:
        image = render(table, shape, args.pixel_nm, args.method, args.sigma_nm)
    bar = ""
    if args.scale_bar_nm is not None:
        image, length = add_scale_bar(image, args.pixel_nm, args.scale_bar_nm or None)
        bar = f", scale bar {length:g} nm"
    write_image_tiff(args.out, image, args.pixel_nm)
    print(f"rendered {len(table)} localisations: {image.shape[1]} x {image.shape[0]} px of {args.pixel_nm:g} nm"
          f"{colours}{bar} -> {args.out}")
    return 0


def _stats(args) -> int:
    from .analysis.plots import draw_stats
    from .analysis.stats import SUMMARISED, table_stats

    stats = table_stats(read_localizations(args.table, args.pixel_size))
    if args.plot:
        _save_plot(draw_stats, args.plot, stats)
    if args.json:
        print(json.dumps(stats.summary, indent=2))
        return 0
    s = stats.summary
    lines = [f"{s['localizations']:,} localisations in {s['frames']:,} frames "
             f"({s['localizations_per_frame']['mean']:.1f} per frame)"]
    for column in ("photons", "uncertainty_nm", "background", "probability", "z_nm", "uncertainty_z_nm"):
        if column in s:
            lines.append(f"{SUMMARISED[column]}: median {s[column]['median']:.4g} (quartiles {s[column]['q1']:.4g}–"
                         f"{s[column]['q3']:.4g})")
    bleach = s["bleaching"]
    lines.append("bleaching: no decay over the movie" if bleach is None else
                 f"bleaching: half-life {bleach['half_life_frames']:.0f} frames, plateau "
                 f"{bleach['plateau_per_frame']:.1f} per frame")
    print("\n".join(lines))
    return 0
