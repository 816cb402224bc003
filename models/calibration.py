"""The calibration map from raw reward to compliance probability, its fit, and its measurement.

`p_comply = sigmoid(reward / temperature + bias)`, optionally followed by an isotonic correction: a non-decreasing
piecewise-linear curve through knots (sigmoid probability, observed compliance rate). Both stages are monotone, so the
reward's ordering is kept. Temperature and bias are fitted by maximum likelihood on held-out (reward, label) pairs,
where label 1 means the response complies and 0 that it violates; the knots by pool-adjacent-violators on the same
pairs (`fit_calibration(..., method="isotonic")`), which undoes a reliability curve that is not a sigmoid of the
reward. `expected_calibration_error` reports how well the probabilities match observed frequencies.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "CALIBRATION_METHODS",
    "Calibration",
    "calibrated_ece_floor",
    "expected_calibration_error",
    "fit_calibration",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
ArrayLike = Sequence[float] | npt.NDArray[Any]

_MIN_SLOPE = 1e-6

CALIBRATION_METHODS = ("sigmoid", "isotonic")
"""`fit_calibration` methods: temperature and bias alone, or followed by an isotonic correction."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """Temperature-and-bias scaling of the reward logit, optionally corrected by an isotonic curve.

    Attributes:
        temperature: Divides the reward; must be finite and > 0 (so the map is increasing).
        bias: Added after scaling; must be finite.
        knots: None, or (sigmoid probability, calibrated probability) points, at least two, the first coordinates
            strictly increasing and the second non-decreasing, all in [0, 1]. `p_comply` interpolates linearly
            between them and holds the end values beyond the first and last.
    """

    temperature: float = 1.0
    bias: float = 0.0
    knots: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            raise ValueError(f"calibration temperature must be finite and > 0, got {self.temperature!r}")
        if not math.isfinite(self.bias):
            raise ValueError(f"calibration bias must be finite, got {self.bias!r}")
        if self.knots is not None:
            _check_knots(self.knots)

    @overload
    def p_comply(self, reward: float) -> float: ...

    @overload
    def p_comply(self, reward: npt.NDArray[Any]) -> FloatArray: ...

    def p_comply(self, reward: float | npt.NDArray[Any]) -> float | FloatArray:
        """Map a reward (a float or a numpy array of them) to the probability that the response complies."""
        if isinstance(reward, np.ndarray):
            return self._correct(_sigmoid(np.asarray(reward, dtype=np.float64) / self.temperature + self.bias))
        z = float(reward) / self.temperature + self.bias
        return float(self._correct(_sigmoid(np.asarray([z])))[0])

    def _correct(self, p: FloatArray) -> FloatArray:
        if self.knots is None:
            return p
        xs, ys = zip(*self.knots, strict=True)
        out: FloatArray = np.interp(p, xs, ys)
        return out


def _check_knots(knots: Sequence[tuple[float, float]]) -> None:
    xy = np.asarray(knots, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] < 2:
        raise ValueError(f"calibration knots must be at least two (x, y) points, got shape {xy.shape}")
    if not np.all((xy >= 0) & (xy <= 1)):
        raise ValueError("calibration knots must lie in [0, 1]")
    if not (np.all(np.diff(xy[:, 0]) > 0) and np.all(np.diff(xy[:, 1]) >= 0)):
        raise ValueError("calibration knots must have increasing x and non-decreasing y")


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = np.exp(-np.logaddexp(0.0, -z))
    return out


def _as_arrays(rewards: ArrayLike, labels: ArrayLike) -> tuple[FloatArray, FloatArray]:
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if r.shape != y.shape:
        raise ValueError(f"rewards and labels differ in length: {r.size} != {y.size}")
    if r.size == 0:
        raise ValueError("cannot fit a calibration on no data")
    if not np.all(np.isfinite(r)):
        raise ValueError("rewards must be finite")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (violate) or 1 (comply)")
    if y.min() == y.max():
        raise ValueError("labels must contain both classes (comply and violate) to fit a calibration")
    return r, y


def _objective(params: FloatArray, r: FloatArray, y: FloatArray, l2: float) -> float:
    z = params[0] * r + params[1]
    nll = np.mean(np.logaddexp(0.0, z) - y * z)
    return float(nll + 0.5 * l2 * float(params @ params))


def _newton(r: FloatArray, y: FloatArray, l2: float, max_iter: int, tol: float) -> FloatArray:
    """Minimise the mean logistic NLL of sigmoid(a*r + b) (+ a tiny ridge) by damped Newton steps."""
    x = np.stack([r, np.ones_like(r)], axis=1)
    params = np.zeros(2)
    loss = _objective(params, r, y, l2)
    for _ in range(max_iter):
        p = _sigmoid(x @ params)
        grad = x.T @ (p - y) / r.size + l2 * params
        hess = (x * (p * (1 - p))[:, None]).T @ x / r.size + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-8:
            candidate = params - t * step
            new_loss = _objective(candidate, r, y, l2)
            if new_loss <= loss:
                break
            t *= 0.5
        else:
            break  # no descent left: at the optimum up to rounding
        params, improvement, loss = candidate, loss - new_loss, new_loss
        if improvement < tol:
            break
    return params


def fit_calibration(
    rewards: ArrayLike, labels: ArrayLike, *, method: str = "sigmoid", l2: float = 1e-6, max_iter: int = 100,
    tol: float = 1e-12,
) -> Calibration:
    """Fit temperature and bias by maximum likelihood, and with ``method="isotonic"`` the correction knots.

    Args:
        rewards: Raw rewards on held-out data.
        labels: 1 where the response complies with the policy, 0 where it violates it.
        method: One of `CALIBRATION_METHODS`.
        l2: A tiny ridge on (1/T, b) that keeps the fit finite on perfectly separable data.
        max_iter: Newton iterations at most.
        tol: Stop when the loss improves by less than this.

    Returns:
        The fitted Calibration. When rewards do not increase with compliance at all, the best increasing map is
        the constant base rate; it is returned as a very large temperature without knots (and logged).

    Raises:
        ValueError: Mismatched lengths, no data, non-finite rewards, labels outside {0, 1}, a single class, or an
            unknown method.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    r, y = _as_arrays(rewards, labels)
    slope, bias = (float(v) for v in _newton(r, y, l2, max_iter, tol))
    if slope <= _MIN_SLOPE:
        rate = float(np.clip(y.mean(), 1e-12, 1 - 1e-12))
        logger.warning("rewards do not increase with compliance (slope %.3g); calibration is the base rate", slope)
        return Calibration(temperature=1.0 / _MIN_SLOPE, bias=math.log(rate / (1 - rate)))
    sigmoid = Calibration(temperature=1.0 / slope, bias=bias)
    if method == "sigmoid":
        return sigmoid
    # A positive slope means rewards and labels correlate, so pooling leaves at least two blocks.
    knots = _isotonic_knots(sigmoid.p_comply(r), y)
    return Calibration(temperature=sigmoid.temperature, bias=sigmoid.bias, knots=knots)


def _isotonic_knots(p: FloatArray, y: FloatArray) -> tuple[tuple[float, float], ...]:
    """Pool adjacent violators over ``p``'s order: each pooled block becomes a knot at (its mean ``p``, its compliance
    rate). A rate of exactly 0 or 1 is pulled to 1/(n+2) from it, n the block's size (the rule of succession for a
    block that saw one class only), so no probability is certain, and the rates are then made non-decreasing again."""
    values, inverse = np.unique(p, return_inverse=True)  # tied probabilities start in one block
    blocks: list[list[float]] = []  # [sum of labels, count, sum of p]
    for value, n, positives in zip(values, np.bincount(inverse), np.bincount(inverse, weights=y), strict=True):
        blocks.append([float(positives), float(n), float(value) * float(n)])
        while len(blocks) > 1 and blocks[-2][0] * blocks[-1][1] >= blocks[-1][0] * blocks[-2][1]:
            last = blocks.pop()
            blocks[-1] = [a + b for a, b in zip(blocks[-1], last, strict=True)]
    counts = np.array([b[1] for b in blocks])
    rates = np.array([b[0] for b in blocks]) / counts
    rates = np.maximum.accumulate(np.clip(rates, 1 / (counts + 2), 1 - 1 / (counts + 2)))
    return tuple((b[2] / b[1], float(rate)) for b, rate in zip(blocks, rates, strict=True))


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, bins: int = 15) -> float:
    """Expected calibration error of compliance probabilities over equal-width bins on [0, 1].

    ECE = sum over bins of (bin size / N) * |mean probability in bin - fraction of label 1 in bin|.
    A probability of exactly 1.0 falls in the last bin.

    Args:
        probs: Predicted P(comply), each in [0, 1].
        labels: 1 = comply, 0 = violate.
        bins: Number of equal-width bins (>= 1).

    Raises:
        ValueError: Mismatched lengths, no data, probabilities outside [0, 1], labels outside {0, 1}, bins < 1.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if p.shape != y.shape or p.size == 0:
        raise ValueError(f"need equally many probabilities and labels, at least one: {p.size} vs {y.size}")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (violate) or 1 (comply)")
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += float(mask.sum()) / p.size * abs(float(p[mask].mean()) - float(y[mask].mean()))
    return total


def calibrated_ece_floor(probs: ArrayLike, bins: int = 15, draws: int = 200, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model would still show on this many items at these probabilities.

    Labels are drawn as Bernoulli(probs) ``draws`` times (a fixed ``seed``) and the mean of their ECE is returned:
    the sampling noise in an ECE measured on a finite set, against which a measured ECE is read.
    """
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    rng = np.random.default_rng(seed)
    return float(np.mean([expected_calibration_error(p, rng.random(p.size) < p, bins) for _ in range(draws)]))
