"""gwpy's cubic-spline interpolation, precomputed as linear operators.

``gwpy.signal.qtransform.QGram.interpolate`` resamples each Q row in time with
``scipy.interpolate.InterpolatedUnivariateSpline`` and then across frequency with
``RectBivariateSpline``. Both are FITPACK interpolating cubic splines (``k=3, s=0``), which are the
not-a-knot cubic splines. An interpolating spline is linear in its data, so on fixed input and output
grids it is a fixed matrix: it is built here once, in float64 with scipy, and applied in torch.
"""

import numpy as np
from scipy.interpolate import BSpline
from scipy.sparse.linalg import splu

DEGREE = 3


def not_a_knot_knots(x: np.ndarray) -> np.ndarray:
    """Knots ``[x.size + 4]`` of the not-a-knot cubic spline through the nodes ``x`` (FITPACK's, s=0)."""
    return np.r_[[x[0]] * (DEGREE + 1), x[2:-2], [x[-1]] * (DEGREE + 1)]


def spline_matrix(x_in: np.ndarray, x_out: np.ndarray) -> np.ndarray:
    """Operator ``[out, in]`` mapping samples at the nodes ``x_in`` to the spline's values at ``x_out``.

    Points of ``x_out`` outside ``x_in``'s range are extrapolated with the end polynomial, as FITPACK's
    ``splev`` does (``ext=0``, the ``InterpolatedUnivariateSpline`` default).
    """
    knots = not_a_knot_knots(x_in)
    collocation = BSpline.design_matrix(x_in, knots, DEGREE).tocsc()  # [in, coeff], banded
    basis_out = BSpline.design_matrix(x_out, knots, DEGREE, extrapolate=True)  # [out, coeff]
    # basis_out @ collocation^-1, solved with the out points as right-hand sides: no [in, in] inverse
    return splu(collocation).solve(basis_out.T.toarray(), trans="T").T


def banded(matrix: np.ndarray, rtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """``[out, in]`` operator -> ``(index, weight)``, both ``[out, taps]``, with ``out = (x[index] * weight).sum(-1)``.

    A spline's response to one sample decays by ~3.7x per node, so each output only needs the
    contiguous run of inputs whose weight exceeds ``rtol`` x the row's largest; the dropped weights
    change the result by less than ~``rtol`` relative. Runs are padded to a common length with zero weight.
    """
    size = matrix.shape[1]
    magnitude = np.abs(matrix)
    keep = magnitude > rtol * magnitude.max(axis=1, keepdims=True)
    first = keep.argmax(axis=1)
    last = size - 1 - keep[:, ::-1].argmax(axis=1)
    span = first[:, None] + np.arange((last - first).max() + 1)
    index = np.minimum(span, size - 1)
    weight = np.where(span <= last[:, None], np.take_along_axis(matrix, index, axis=1), 0.0)
    return index, weight
