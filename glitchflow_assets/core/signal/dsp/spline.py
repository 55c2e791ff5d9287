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


def spline_matrix(x_in: np.ndarray, x_out: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Operator ``[out, in]`` mapping samples at the nodes ``x_in`` to the spline's values at ``x_out``.

    Points of ``x_out`` outside ``x_in``'s range are extrapolated with the end polynomial, as FITPACK's
    ``splev`` does (``ext=0``, the ``InterpolatedUnivariateSpline`` default). A spline's response to one
    sample decays by ~3.7x per node. Weights below ``rtol`` x their row's largest are zeroed, which changes
    results by < ~``rtol`` relative. It also keeps float32 free of subnormal weights, which are ~50x slower
    in a CPU matmul.
    """
    knots = not_a_knot_knots(x_in)
    collocation = BSpline.design_matrix(x_in, knots, DEGREE).tocsc()  # [in, coeff], banded
    basis_out = BSpline.design_matrix(x_out, knots, DEGREE, extrapolate=True)  # [out, coeff]
    # basis_out @ collocation^-1, solved with the out points as right-hand sides: no [in, in] inverse
    matrix = splu(collocation).solve(basis_out.T.toarray(), trans="T").T
    magnitude = np.abs(matrix)
    return np.where(magnitude > rtol * magnitude.max(axis=1, keepdims=True), matrix, 0.0)


def banded(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[out, in]`` operator -> ``(index, weight)``, both ``[out, taps]``, with ``out = (x[index] * weight).sum(-1)``.

    It covers each row's run from its first to its last non-zero weight. Runs are padded to a common length
    with zero weight.
    """
    size = matrix.shape[1]
    keep = matrix != 0
    first = keep.argmax(axis=1)
    last = size - 1 - keep[:, ::-1].argmax(axis=1)
    span = first[:, None] + np.arange((last - first).max() + 1)
    index = np.minimum(span, size - 1)
    weight = np.where(span <= last[:, None], np.take_along_axis(matrix, index, axis=1), 0.0)
    return index, weight
