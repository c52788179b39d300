"""The project's one fitting loop: maximum likelihood by Fisher scoring of pixel-integrated
Gaussian spots over a background that is linear in its parameters, under the camera's noise,
compiled (numba) and run fit by fit. Every fit of the project runs here: the joint fits of
overlapping detections (joint.py), single spots (mle.py: the classical reference, calibration
beads) and the test against background only (background_test.py).

A fit's parameters theta (P,) are its K emitters' (x, y px, then by `Spots.kind`: photons;
z nm and photons; sigma px and photons; sigma_x, sigma_y px and photons), then the background's
Q terms: one constant (photons/px), or a quadratic surface over the window (1, u, v, u², v², u v
with u, v from -0.5 to 0.5 across it). ROI coordinates: pixel (r, c) covers [c, c + 1) x
[r, r + 1).

The camera's noise as it is: read noise of variance v (photons², per pixel: an sCMOS variance
map, or read noise) through the shifted-Poisson approximation (counts + v ~ Poisson(model + v));
the EM excess noise factor (2 for an EMCCD with gain) by scaling counts and model by its
inverse. Every step goes uphill: one longer than a parameter's step limit is shortened as a
whole, a parameter on its bound that the step would push beyond it is held there, and a step
that lowered the likelihood is halved back (without these, about one astigmatic fit in ten
oscillated or ran against the calibration's z range and never converged). Held parameters
(`fixed`) and those pinned on a bound are left out of the step's system, so they stay where
they are.

Compiled because most fits are small (a few parameters over 50-300 pixels) and take 4-25 steps:
in numpy their time went on the steps' overhead, not their arithmetic. The test against
background only runs here whole, window after window (spot_against_background). 160x160 frames at
1 /µm², one thread: the refinement's thread 67 ms per frame in numpy, 22 now (docs/refinement.md,
*Speed*)."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from numba import njit

from ..psf import PSF

ROUND, ASTIGMATIC, FREE_ROUND, FREE_ELLIPTICAL = 0, 1, 2, 3  # Spots.kind
PER_EMITTER = {ROUND: 3, ASTIGMATIC: 4, FREE_ROUND: 4, FREE_ELLIPTICAL: 5}
CONSTANT, QUADRATIC = 1, 6  # background terms
RIDGE = 1e-9  # added to the Fisher information's diagonal before it is inverted
MIN_EXPECTED = 1e-6  # photons: the least a pixel's model is taken to be
_SQRT2, _SQRT_2PI = math.sqrt(2.0), math.sqrt(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class Spots:
    """How the fit's spots are shaped: `kind` ROUND (x, y, photons; the widths `widths_px_GK2`
    (sigma_x, sigma_y px) of each fit's K emitters given), ASTIGMATIC (x, y, z, photons; widths
    from the calibration's defocus curves at z), FREE_ROUND (x, y, sigma, photons), or
    FREE_ELLIPTICAL (x, y, sigma_x, sigma_y, photons)."""

    kind: int
    widths_px_GK2: np.ndarray | None = None
    psf: PSF | None = None
    pixel_size_nm: float = 1.0

    def curves(self) -> np.ndarray:
        """(2, 5) per axis (x, y): sigma0, focus, depth (nm), cubic, quartic; zeros but ASTIGMATIC."""
        if self.kind != ASTIGMATIC:
            return np.zeros((2, 5))
        return np.array([[c.sigma0_nm, c.focus_nm, c.depth_nm, c.cubic, c.quartic]
                         for c in (self.psf.curve_x, self.psf.curve_y)], np.float64)


@dataclasses.dataclass
class FitResult:
    """theta (N, P) at the estimate; variance (N, P): the Cramér–Rao variances there (the
    diagonal of the inverse Fisher information of the free parameters, the camera's noise
    included; 0 for a held parameter, NaN where not asked for); loglik (N,) up to a constant;
    converged (N,): finite, and the last step settled (_settled): the fit stopped there."""

    theta: np.ndarray
    variance: np.ndarray
    loglik: np.ndarray
    converged: np.ndarray
    counts_NK: np.ndarray = dataclasses.field(repr=False)  # the counts and expectations the fit compared (scaled)
    expected_NK: np.ndarray = dataclasses.field(repr=False)
    weight_NK: np.ndarray = dataclasses.field(repr=False)

    @functools.cached_property
    def deviance_NK(self) -> np.ndarray:
        """(N, K) each pixel's Poisson deviance (0 where left out): about 1 on average where the model holds."""
        counts, expected = self.counts_NK, self.expected_NK
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(counts > 0, counts * np.log(counts / expected), 0.0) - (counts - expected)
        return 2 * self.weight_NK * terms


def fisher_scoring(counts_NK: np.ndarray, theta_NP: np.ndarray, spots: Spots, limits, n_iter: int, size: int,
                   pixels: tuple[np.ndarray, np.ndarray] | None = None, read_variance_NK: np.ndarray | float = 0.0,
                   excess: float = 1.0, weight_NK: np.ndarray | None = None, known_NK: np.ndarray | None = None,
                   n_terms: int = CONSTANT, fixed_NP: np.ndarray | None = None, bounds: bool = True) -> FitResult:
    """Maximum-likelihood estimate of N fits from theta_NP (module docstring) in ROIs of `size` x
    `size` px: counts_NK photons in K pixels, at pixels = (rows, cols) (each (N, K)) of each ROI
    (None: every pixel, row by row, K = size²); limits = (largest step, lower bound, upper bound),
    the step (P,), the bounds (P,) or (N, P); read_variance_NK photons² (per pixel or one value),
    `excess` the EM excess noise factor, weight_NK (0 or 1) leaves pixels out, known_NK expected
    photons of spots held outside the fit; n_terms the background's (CONSTANT or QUADRATIC);
    fixed_NP (bool) holds parameters where they start; bounds False skips the Cramér–Rao
    variances (NaN) where only the estimate and its likelihood are wanted."""
    counts_NK = np.asarray(counts_NK, np.float64)
    n, n_px = counts_NK.shape
    theta = np.array(theta_NP, np.float64, copy=True)
    per = PER_EMITTER[spots.kind]
    k = (theta.shape[1] - n_terms) // per
    # per-fit arrays that are the same for every fit go in as one row (_row)
    if pixels is None:
        grid = np.arange(size * size)
        rows, cols = (grid // size)[None], (grid % size)[None]
    else:
        rows, cols = pixels
    offset = np.asarray(read_variance_NK, np.float64)
    offset = offset.reshape(1, 1).repeat(n_px, 1) if offset.ndim == 0 else offset
    weight = np.ones((1, n_px)) if weight_NK is None else np.asarray(weight_NK, np.float64)
    counts = np.maximum(np.nan_to_num(counts_NK) + offset, 0.0) / excess
    step_limit, lower, upper = (np.asarray(limit, np.float64) for limit in limits)
    widths = np.zeros((n, max(k, 1), 2)) if spots.widths_px_GK2 is None else spots.widths_px_GK2
    variance, loglik = np.full(theta.shape, np.nan), np.zeros(n)
    converged, expected = np.zeros(n, np.bool_), np.zeros((n, n_px))
    _fit_all(_for_loop(counts), _for_loop(offset), _for_loop(weight),
             np.zeros((1, n_px)) if known_NK is None else _for_loop(known_NK),
             _for_loop(rows, np.int64), _for_loop(cols, np.int64), size,
             theta, np.ones(theta.shape, np.bool_) if fixed_NP is None else ~np.asarray(fixed_NP, np.bool_),
             _for_loop(np.broadcast_to(lower, theta.shape)), _for_loop(np.broadcast_to(upper, theta.shape)),
             _for_loop(step_limit), spots.kind, k, per, n_terms, _for_loop(widths), spots.curves(),
             float(spots.pixel_size_nm), float(excess), int(n_iter), bool(bounds),
             variance, loglik, converged, expected)
    return FitResult(theta, variance, loglik, converged, counts, expected, np.broadcast_to(weight, counts.shape))


def spot_against_background(photons_THW: np.ndarray, read_variance_HW: np.ndarray | float, frame_N: np.ndarray,
                            row0_N: np.ndarray, col0_N: np.ndarray, x_px_N: np.ndarray, y_px_N: np.ndarray,
                            sigma_x_px_N: np.ndarray, sigma_y_px_N: np.ndarray, size: int, known_NK: np.ndarray | None,
                            excess: float, n_iter: int, background_step: float) -> tuple[np.ndarray, np.ndarray]:
    """(N,) twice the log-likelihood ratio of a round spot (photons >= 0) held at (x, y) px of its
    frame over a quadratic background (QUADRATIC terms) against that background alone, and (N,)
    the spot's photons; each in the size x size window of photons_THW with corner (row0, col0),
    under read variance read_variance_HW (photons², a map or one value) and the EM excess noise
    factor, known_NK expected photons of other spots held in both fits (None: none). Both fits
    start from weighted least squares (the model is linear in photons and the background's
    terms), a step or two from their optimum; background_step bounds a term's step."""
    variance = np.atleast_2d(np.asarray(read_variance_HW, np.float64))
    n = len(frame_N)
    known = np.zeros((1, size * size)) if known_NK is None else _for_loop(known_NK)
    ratio, photons = np.zeros(n), np.zeros(n)
    _spots_against_background(_for_loop(photons_THW), _for_loop(variance),
                              *(_for_loop(a, np.int64) for a in (frame_N, row0_N, col0_N)),
                              *(_for_loop(a) for a in (x_px_N, y_px_N, sigma_x_px_N, sigma_y_px_N)),
                              int(size), known, float(excess), int(n_iter), float(background_step), ratio, photons)
    return ratio, photons


def _for_loop(array, dtype=np.float64) -> np.ndarray:
    """`array` as the compiled code takes it: C-ordered, writable, of `dtype` (copied only where it
    is not). numba compiles a function once per layout and writability of its arguments: a
    read-only view (np.broadcast_to) beside a writable copy would compile it twice."""
    return np.require(array, dtype, ["C_CONTIGUOUS", "WRITEABLE"])


def compile_fits() -> None:
    """Compile the fitting loop and the test against background only on a tiny fit each (numba:
    about 15 s on 2 cores the first time after installing; later processes load the machine code
    from numba's cache in well under a second)."""
    fisher_scoring(np.ones((1, 9)), np.array([[1.5, 1.5, 10.0, 1.0]]), Spots(ROUND, np.ones((1, 1, 2))),
                   (np.full(4, np.inf), np.full(4, -np.inf), np.full(4, np.inf)), 1, 3)
    spot_against_background(np.ones((1, 3, 3)), 0.0, np.zeros(1, int), np.zeros(1, int), np.zeros(1, int),
                            np.ones(1), np.ones(1), np.ones(1), np.ones(1), 3, None, 1.0, 1, 1.0)


def fits_compiled() -> bool:
    """Whether this process has the fits' machine code (compile_fits or a first fit has run)."""
    return bool(_fit_all.signatures and _spots_against_background.signatures)


@njit(cache=True, nogil=True)
def _axis(centre, sigma, n, fractions, d_centre, d_sigma):
    """Along one axis, the fraction of a Gaussian (centre, sigma px) in each of pixels 0..n-1 and
    its derivatives by the centre and by sigma, into the (n,) arrays given; each edge once."""
    t0 = -centre
    c0 = math.erf(t0 / (_SQRT2 * sigma))
    g0 = math.exp(-t0 * t0 / (2.0 * sigma * sigma)) / (_SQRT_2PI * sigma)
    for i in range(n):
        t1 = i + 1.0 - centre
        c1 = math.erf(t1 / (_SQRT2 * sigma))
        g1 = math.exp(-t1 * t1 / (2.0 * sigma * sigma)) / (_SQRT_2PI * sigma)
        fractions[i] = 0.5 * (c1 - c0)
        d_centre[i] = g0 - g1
        d_sigma[i] = (t0 * g0 - t1 * g1) / sigma
        t0, c0, g0 = t1, c1, g1


@njit(cache=True, nogil=True)
def _defocus(curve, z):
    """sigma (nm) and d sigma / dz of one defocus curve (sigma0, focus, depth, cubic, quartic) at z (nm)."""
    u = (z - curve[1]) / curve[2]
    width2 = max(1.0 + u * u + curve[3] * u ** 3 + curve[4] * u ** 4, 0.01)
    d_width2 = 2.0 * u + 3.0 * curve[3] * u * u + 4.0 * curve[4] * u ** 3
    return curve[0] * math.sqrt(width2), curve[0] * d_width2 / (2.0 * math.sqrt(width2) * curve[2])


@njit(cache=True, nogil=True)
def _background_terms(rows, cols, size, first, n_terms, jac):
    """The background's terms at a fit's pixels into jac[first:first + n_terms]: its derivatives,
    the same at every step."""
    for m in range(len(rows)):
        jac[first, m] = 1.0
        if n_terms == 6:
            u, v = (cols[m] + 0.5) / size - 0.5, (rows[m] + 0.5) / size - 0.5
            jac[first + 1, m], jac[first + 2, m], jac[first + 3, m] = u, v, u * u
            jac[first + 4, m], jac[first + 5, m] = v * v, u * v


@njit(cache=True, nogil=True)
def _model(theta, kind, k, per, n_terms, widths, curves, px_nm, rows, cols, known, offset, excess, expected, jac,
           work, held_shapes):
    """A fit's expected scaled counts (K,) (its spots, background and held light, at least
    MIN_EXPECTED photons, plus the read variance, over `excess`) and the spots' derivatives by
    their parameters (P, K) in photons, into `expected` and `jac` (whose background rows
    _background_terms set); work (6, size) scratch. held_shapes: the spots' positions and widths
    are held and jac's photons rows hold their unit shapes from an earlier call (the other rows
    are then left as they were)."""
    n_px = len(rows)
    expected[:] = known
    ex, dex, dsx, ey, dey, dsy = work[0], work[1], work[2], work[3], work[4], work[5]
    size = work.shape[1]
    for e in range(k):
        base = e * per
        slope_x = slope_y = 0.0
        if kind == 0:
            sigma_x, sigma_y = widths[e, 0], widths[e, 1]
        elif kind == 1:
            sigma_x, slope_x = _defocus(curves[0], theta[base + 2])
            sigma_y, slope_y = _defocus(curves[1], theta[base + 2])
            sigma_x, sigma_y, slope_x, slope_y = sigma_x / px_nm, sigma_y / px_nm, slope_x / px_nm, slope_y / px_nm
        elif kind == 2:
            sigma_x = sigma_y = theta[base + 2]
        else:
            sigma_x, sigma_y = theta[base + 2], theta[base + 3]
        photons = theta[base + per - 1]
        if held_shapes:
            d_photons = jac[base + per - 1]
            for m in range(n_px):
                expected[m] += photons * d_photons[m]
            continue
        _axis(theta[base], sigma_x, size, ex, dex, dsx)
        _axis(theta[base + 1], sigma_y, size, ey, dey, dsy)
        d_x, d_y, d_width, d_photons = jac[base], jac[base + 1], jac[base + 2], jac[base + per - 1]
        for m in range(n_px):
            r, c = rows[m], cols[m]
            shape = ey[r] * ex[c]
            expected[m] += photons * shape
            d_x[m] = photons * ey[r] * dex[c]
            d_y[m] = photons * dey[r] * ex[c]
            d_photons[m] = shape
            if kind == 1:
                d_width[m] = photons * (ey[r] * dsx[c] * slope_x + dsy[r] * ex[c] * slope_y)
            elif kind == 2:
                d_width[m] = photons * (ey[r] * dsx[c] + dsy[r] * ex[c])
            elif kind == 3:
                d_width[m] = photons * ey[r] * dsx[c]
                jac[base + 3, m] = photons * dsy[r] * ex[c]
    first = k * per
    for q in range(n_terms):
        level, terms = theta[first + q], jac[first + q]
        for m in range(n_px):
            expected[m] += level * terms[m]
    per_excess = 1.0 / excess  # (1 or 2: the products are exact)
    for m in range(n_px):
        expected[m] = (max(expected[m], MIN_EXPECTED) + offset[m]) * per_excess


@njit(cache=True, nogil=True)
def _log_likelihood(counts, expected, weight):
    """Σ weight (counts log expected - expected) over a fit's pixels: its log-likelihood up to a constant."""
    total = 0.0
    for m in range(len(counts)):
        total += weight[m] * (counts[m] * math.log(expected[m]) - expected[m])
    return total


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _information(counts, expected, weight, jac, index, n_free, excess, fisher, score, scratch):
    """The Fisher information (n_free, n_free) and score (n_free,) of the parameters index[:n_free],
    into `fisher` and `score` (the ridge added); scratch (3, K)."""
    d, residual, weighted = scratch[0], scratch[1], scratch[2]
    per_excess = 1.0 / excess
    for m in range(len(counts)):
        scale, inverse = weight[m] * per_excess, 1.0 / expected[m]
        d[m] = scale * scale * inverse
        residual[m] = scale * (counts[m] * inverse - 1.0)
    _normal_equations(jac, index, n_free, d, residual, weighted, fisher, score)


@njit(cache=True, nogil=True)
def _solve(fisher, score, n, chol, column, step, variance):
    """step (n,) = fisher⁻¹ score and variance (n,) the diagonal of fisher⁻¹ (fisher (n, n) of
    the free parameters), by Cholesky (chol (n, n) and column (n,) scratch); by np.linalg.pinv
    where fisher is not positive definite to rounding."""
    for j in range(n):
        for i in range(j, n):
            total = fisher[i, j]
            for c in range(j):
                total -= chol[i, c] * chol[j, c]
            if i > j:
                chol[i, j] = total / chol[j, j]
            elif total > 0:
                chol[j, j] = math.sqrt(total)
            else:
                inverse = np.linalg.pinv(fisher[:n, :n])
                for p in range(n):
                    step[p] = 0.0
                    for q in range(n):
                        step[p] += inverse[p, q] * score[q]
                    variance[p] = inverse[p, p]
                return
    for i in range(n):  # L y = score, then Lᵀ step = y
        total = score[i]
        for c in range(i):
            total -= chol[i, c] * step[c]
        step[i] = total / chol[i, i]
    for i in range(n - 1, -1, -1):
        total = step[i]
        for c in range(i + 1, n):
            total -= chol[c, i] * step[c]
        step[i] = total / chol[i, i]
    for j in range(n):  # the diagonal of L⁻ᵀ L⁻¹: column j of L⁻¹ squared and summed
        variance[j] = 0.0
        for i in range(j, n):
            total = 1.0 if i == j else 0.0
            for c in range(j, i):
                total -= chol[i, c] * column[c]
            column[i] = total / chol[i, i]
            variance[j] += column[i] * column[i]


@njit(cache=True, nogil=True)
def _settled(change, theta, step_limit, sd):
    """Whether every parameter moved less than a hundredth of its sd (its Cramér–Rao sd at the
    step's start) or a thousandth of its step limit (positions) or of its value (photons, the
    background's terms: no step limit): a step this small leaves it where it is."""
    for p in range(len(theta)):
        tolerance = 1e-3 * step_limit[p] if np.isfinite(step_limit[p]) else 1e-3 * abs(theta[p]) + 1e-9
        if not change[p] <= max(tolerance, 1e-2 * sd[p]):
            return False
    return True


@njit(cache=True, nogil=True)
def _fit_all(counts, offset, weight, known, rows, cols, size, theta, free_in, lower, upper, step_limit,
             kind, k, per, n_terms, widths, curves, px_nm, excess, n_iter, bounds,
             variance, loglik, converged, expected):
    """Fit after fit (fisher_scoring's arguments, arrays per fit); theta in place, results into
    variance, loglik, converged, expected."""
    n, n_px = counts.shape
    space = _workspace(theta.shape[1], n_px, size)
    for i in range(n):
        loglik[i], converged[i] = _fit_one(
            counts[i], offset[_row(offset, i)], weight[_row(weight, i)], known[_row(known, i)], rows[_row(rows, i)],
            cols[_row(cols, i)], size, theta[i], free_in[i], lower[i], upper[i], step_limit, kind, k, per, n_terms,
            widths[i], curves, px_nm, excess, n_iter, bounds, variance[i], expected[i], space)


@njit(cache=True, nogil=True)
def _workspace(n_par, n_px, size):
    """One fit's scratch arrays, reused fit after fit: jac (P, K), work (6, size), scratch (3, K),
    fisher, chol (P, P), score, column, solved, sd_free, origin, sd, change (P,), index (P,)."""
    return (np.zeros((n_par, n_px)), np.zeros((6, size)), np.zeros((3, n_px)), np.zeros((n_par, n_par)),
            np.zeros((n_par, n_par)), np.zeros(n_par), np.zeros(n_par), np.zeros(n_par), np.zeros(n_par),
            np.zeros(n_par), np.zeros(n_par), np.zeros(n_par), np.zeros(n_par, np.int64))


@njit(cache=True, nogil=True)
def _fit_one(counts, offset, weight, known, rows, cols, size, th, free_in, lower, upper, step_limit,
             kind, k, per, n_terms, widths, curves, px_nm, excess, n_iter, bounds, variance, expected, space):
    """One fit (fisher_scoring's arguments for one fit, its K pixels): th (P,) in place, its
    Cramér–Rao variances into variance (P,) where `bounds`, its model into expected (K,); returns
    (log-likelihood, converged). space: _workspace."""
    jac, work, scratch, fisher, chol, score, column, solved, sd_free, origin, sd, change, index = space
    n_par = len(th)
    held_shapes = False  # from the second evaluation on, where no spot's position or width is free
    shapes_free = False
    for e in range(k):
        for p in range(e * per, e * per + per - 1):
            shapes_free = shapes_free or free_in[p]
    _background_terms(rows, cols, size, k * per, n_terms, jac)
    origin[:] = th
    sd[:] = 0.0
    reached = -np.inf
    done = False
    for _ in range(n_iter):
        _model(th, kind, k, per, n_terms, widths, curves, px_nm, rows, cols, known, offset, excess, expected, jac, work,
               held_shapes)
        held_shapes = not shapes_free
        current = _log_likelihood(counts, expected, weight)
        if current < reached - 1e-9 * abs(reached):  # overshot: halved back towards where it started
            for p in range(n_par):
                change[p] = abs(th[p] - origin[p]) / 2
                th[p] = (th[p] + origin[p]) / 2
        else:
            origin[:] = th
            reached = current
            n_free = _free(free_in, index)
            _information(counts, expected, weight, jac, index, n_free, excess, fisher, score, scratch)
            _solve(fisher, score, n_free, chol, column, solved, sd_free)
            sd[:] = 0.0
            for a in range(n_free):
                sd[index[a]] = math.sqrt(abs(sd_free[a]))
            # parameters on a bound that the step pushes beyond it are held there, the rest stepped without them
            n_held = 0
            for a in range(n_free):
                p = index[a]
                if not ((th[p] <= lower[p] and solved[a] < 0) or (th[p] >= upper[p] and solved[a] > 0)):
                    index[n_held] = p
                    n_held += 1
            if n_held < n_free:
                n_free = n_held
                _information(counts, expected, weight, jac, index, n_free, excess, fisher, score, scratch)
                _solve(fisher, score, n_free, chol, column, solved, sd_free)
            finite, shorten = True, 1.0
            for a in range(n_free):
                p = index[a]
                if not np.isfinite(solved[a]):
                    finite = False
                    solved[a] = 0.0
                elif abs(solved[a]) > step_limit[p]:
                    shorten = min(shorten, step_limit[p] / abs(solved[a]))
            for a in range(n_free):
                p = index[a]
                th[p] = min(max(th[p] + shorten * solved[a], lower[p]), upper[p])
            for p in range(n_par):
                change[p] = abs(th[p] - origin[p]) if finite else np.inf
        if _settled(change, th, step_limit, sd):
            done = True
            break
    _model(th, kind, k, per, n_terms, widths, curves, px_nm, rows, cols, known, offset, excess, expected, jac, work,
           held_shapes)
    if not done and _log_likelihood(counts, expected, weight) < reached:
        th[:] = origin  # out of iterations: a last step that lowered the likelihood is taken back
        _model(th, kind, k, per, n_terms, widths, curves, px_nm, rows, cols, known, offset, excess, expected, jac,
               work, held_shapes)
    ok = done
    if bounds:
        n_free = _free(free_in, index)
        _information(counts, expected, weight, jac, index, n_free, excess, fisher, score, scratch)
        _solve(fisher, score, n_free, chol, column, solved, sd_free)
        variance[:] = 0.0
        for a in range(n_free):
            variance[index[a]] = sd_free[a]
            ok = ok and np.isfinite(sd_free[a])
    for p in range(n_par):
        ok = ok and np.isfinite(th[p])
    return _log_likelihood(counts, expected, weight), ok


@njit(cache=True, nogil=True)
def _spots_against_background(photons, variance, frame, row0, col0, x, y, sigma_x, sigma_y, size, known, excess,
                              n_iter, background_step, ratio, spot_photons):
    """spot_against_background window after window, into ratio and spot_photons (N,)."""
    n_px, n_par = size * size, 3 + QUADRATIC
    rows, cols = np.arange(n_px) // size, np.arange(n_px) % size
    terms = np.zeros((n_par, n_px))
    _background_terms(rows, cols, size, 3, QUADRATIC, terms)
    terms[2] = 0.0  # the spot's unit shape, per window
    step_limit = np.full(n_par, np.inf)
    step_limit[3:] = background_step
    lower, upper = np.full(n_par, -np.inf), np.full(n_par, np.inf)
    lower[2] = 0.0
    background_only, with_spot = np.zeros(n_par, np.bool_), np.zeros(n_par, np.bool_)
    background_only[3:] = True
    with_spot[2:] = True
    counts, offset, projected, weight = np.zeros(n_px), np.zeros(n_px), np.zeros(n_px), np.zeros(n_px)
    ones, expected, widths, variances = np.ones(n_px), np.zeros(n_px), np.zeros((1, 2)), np.zeros(n_par)
    theta, normal, right, chol, column, solved, solved_sd = (np.zeros(n_par), np.zeros((n_par, n_par)),
                                                            np.zeros(n_par), np.zeros((n_par, n_par)),
                                                            np.zeros(n_par), np.zeros(n_par), np.zeros(n_par))
    work, weighted = np.zeros((6, size)), np.zeros(n_px)
    order = np.append(np.arange(3, n_par), 2)  # the background's terms, then the spot
    space = _workspace(n_par, n_px, size)
    curves = np.zeros((2, 5))
    one_value = variance.shape == (1, 1)
    for i in range(len(frame)):
        k = _row(known, i)
        for m in range(n_px):
            r, c = row0[i] + rows[m], col0[i] + cols[m]
            value = photons[frame[i], r, c]
            value = value if np.isfinite(value) else 0.0
            offset[m] = variance[0, 0] if one_value else variance[r, c]
            counts[m] = max(value + offset[m], 0.0) / excess
            weight[m] = 1.0 / max(value + offset[m], 1.0)
            projected[m] = weight[m] * (value - known[k, m])
        theta[:] = 0.0
        theta[0], theta[1] = x[i] - col0[i], y[i] - row0[i]
        widths[0, 0], widths[0, 1] = sigma_x[i], sigma_y[i]
        _axis(theta[0], sigma_x[i], size, work[0], work[1], work[2])
        _axis(theta[1], sigma_y[i], size, work[3], work[4], work[5])
        for m in range(n_px):
            terms[2, m] = work[3, rows[m]] * work[0, cols[m]]
        # least squares over the background's terms first, then the spot: the background alone
        # solves the leading block of the same equations
        _normal_equations(terms, order, len(order), weight, projected, weighted, normal, right)
        _solve(normal, right, QUADRATIC, chol, column, solved, solved_sd)
        theta[3:] = solved[:QUADRATIC]
        background, _ = _fit_one(counts, offset, ones, known[k], rows, cols, size, theta, background_only, lower,
                                 upper, step_limit, ROUND, 1, 3, QUADRATIC, widths, curves, 1.0, excess, n_iter,
                                 False, variances, expected, space)
        _solve(normal, right, QUADRATIC + 1, chol, column, solved, solved_sd)
        theta[3:] = solved[:QUADRATIC]
        theta[2] = max(solved[QUADRATIC], 1.0)
        spot, _ = _fit_one(counts, offset, ones, known[k], rows, cols, size, theta, with_spot, lower, upper,
                           step_limit, ROUND, 1, 3, QUADRATIC, widths, curves, 1.0, excess, n_iter, False, variances,
                           expected, space)
        ratio[i], spot_photons[i] = 2.0 * (spot - background), theta[2]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _normal_equations(design, order, n, weight, projected, weighted, normal, right):
    """normal (n, n) = Σ weight · design[order[a]] · design[order[b]] over the K pixels, the ridge
    added, and right (n,) = Σ projected · design[order[a]]: a weighted least-squares system
    (projected: weight × target) or a fit's Fisher information and score (weight: each pixel's
    information, projected: its scaled residual); weighted (K,) scratch."""
    for a in range(n):
        row = design[order[a]]
        total = 0.0
        for m in range(len(weight)):
            weighted[m] = weight[m] * row[m]
            total += row[m] * projected[m]
        right[a] = total
        for b in range(a, n):
            other = design[order[b]]
            total = 0.0
            for m in range(len(weight)):
                total += weighted[m] * other[m]
            normal[a, b] = normal[b, a] = total
        normal[a, a] += RIDGE


@njit(cache=True, nogil=True)
def _row(per_fit, i):
    """Fit i's row of an array of one row per fit, or of one row for every fit."""
    return i if per_fit.shape[0] > 1 else 0


@njit(cache=True, nogil=True)
def _free(free, index):
    """The free parameters' indexes into index[:n]; returns n."""
    n = 0
    for p in range(len(free)):
        if free[p]:
            index[n] = p
            n += 1
    return n
