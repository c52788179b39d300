"""The family of astigmatic PSF calibrations a calibration-conditioned 3-D model trains on (the
`simulation.psf_family` of a training config), and the check of a user's calibration against it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ..errors import InputError
from ..psf import PSF, DefocusCurve, astigmatic_psf

EDGE_MARGIN = 0.05  # a parameter this fraction of its range beyond an end still counts as inside


@dataclasses.dataclass(frozen=True)
class CalibrationFamily:
    """Astigmatic calibrations drawn per group of training frames, each axis on its own: sigma0,
    depth (nm), the cubic and quartic coefficients, and the focus distance from the plane between
    the foci (nm; x in focus below it, at -distance, y above it, at +distance, as calibrate-psf
    finds them); emitters at z uniform in ±z_half_range_nm."""

    sigma0_nm: tuple[float, float] = (110.0, 160.0)
    focus_distance_nm: tuple[float, float] = (150.0, 350.0)
    depth_nm: tuple[float, float] = (250.0, 450.0)
    cubic: tuple[float, float] = (-0.05, 0.05)
    quartic: tuple[float, float] = (0.0, 0.05)
    z_half_range_nm: float = 600.0

    def __post_init__(self) -> None:
        for field in ("sigma0_nm", "focus_distance_nm", "depth_nm", "cubic", "quartic"):
            low, high = (float(v) for v in getattr(self, field))
            if not low <= high:
                raise InputError(f"simulation.psf_family.{field} must be [low, high] with low <= high")
            object.__setattr__(self, field, (low, high))
        if not self.sigma0_nm[0] > 0 or not self.depth_nm[0] > 0 or not self.z_half_range_nm > 0:
            raise InputError("simulation.psf_family needs sigma0_nm, depth_nm and z_half_range_nm > 0")

    def draw(self, rng: np.random.Generator) -> PSF:
        """One calibration of the family, each value uniform in its range."""
        return self._calibration(lambda span: float(rng.uniform(*span)))

    def middle(self) -> PSF:
        """The calibration at the middle of every range (the held-out stacks')."""
        return self._calibration(lambda span: (span[0] + span[1]) / 2)

    def _calibration(self, pick: Callable[[tuple[float, float]], float]) -> PSF:
        """A calibration whose values `pick` chooses from their ranges."""
        curves = [DefocusCurve(sigma0_nm=pick(self.sigma0_nm), focus_nm=sign * pick(self.focus_distance_nm),
                               depth_nm=pick(self.depth_nm), cubic=pick(self.cubic), quartic=pick(self.quartic))
                  for sign in (-1.0, 1.0)]
        return astigmatic_psf(curves[0], curves[1], (-self.z_half_range_nm, self.z_half_range_nm))

    def outside(self, psf: PSF) -> list[str]:
        """The parameters of a calibration that lie outside the family by more than EDGE_MARGIN of
        their range (a calibration measured on beads scatters around the true curve), in words."""
        found = []
        for axis, curve, sign in (("x", psf.curve_x, -1.0), ("y", psf.curve_y, 1.0)):
            for name, value, span, unit in (("sigma0", curve.sigma0_nm, self.sigma0_nm, " nm"),
                                            ("focus distance", sign * curve.focus_nm, self.focus_distance_nm, " nm"),
                                            ("depth", curve.depth_nm, self.depth_nm, " nm"),
                                            ("cubic", curve.cubic, self.cubic, ""),
                                            ("quartic", curve.quartic, self.quartic, "")):
                margin = EDGE_MARGIN * (span[1] - span[0])
                if not span[0] - margin <= value <= span[1] + margin:
                    found.append(f"{axis} {name} {value:.3g}{unit} (trained {span[0]:g} to {span[1]:g}{unit})")
        return found

