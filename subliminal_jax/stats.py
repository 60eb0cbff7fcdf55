"""Mean and 95% confidence interval over seeds (Student t, no scipy needed)."""
from __future__ import annotations

import math

import numpy as np

# t_{0.975, df} for df = 1..30 (standard table values).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """Two-sided 95% Student-t quantile; Cornish-Fisher expansion past the table."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def summarize(values) -> dict:
    """{'values', 'mean', 'ci95': [lo, hi], 'ci95_half', 'n'} for per-seed values."""
    v = np.asarray(values, dtype=np.float64).ravel()
    mean = float(v.mean())
    half = float(t975(len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return {"values": [float(x) for x in v], "mean": mean, "ci95": [mean - half, mean + half],
            "ci95_half": half, "n": int(len(v))}


def geometric_fit(values, n_boot: int = 2000, seed: int = 0) -> dict | None:
    """Fit mean_g = a * r**g (g = 0..n-1) to the seed means of values ([S, n]: n points per seed) by least
    squares, r on a grid in [-1, 2] and a in closed form. Least squares on the means, not a log-linear fit: means near zero, or below
    it, are what a decaying trait ends in, and their logarithms would dominate (or break) the fit. 95% CI on r:
    a bootstrap over seeds (whole rows resampled). None for fewer than 2 columns.
    -> {'r', 'r_ci95', 'a', 'n_seeds', 'n_points'}"""
    v = np.asarray(values, np.float64)
    S, n = v.shape
    if n < 2:
        return None
    grid = np.linspace(-1.0, 2.0, 3001)
    powers = grid[:, None] ** np.arange(n)  # one row r**g per grid point

    def fit(means):  # rows of means -> (r, a) per row: maximise (m . p_r)^2 / (p_r . p_r), then a = m.p / p.p
        dots = means @ powers.T
        best = np.argmax(dots ** 2 / (powers ** 2).sum(1), axis=1)
        return grid[best], dots[np.arange(len(best)), best] / (powers[best] ** 2).sum(1)
    r, a = fit(v.mean(0)[None])
    resampled = np.random.default_rng(seed).integers(0, S, (n_boot, S))
    r_boot, _ = fit(v[resampled].mean(1))
    return {"r": float(r[0]), "r_ci95": [float(np.percentile(r_boot, 2.5)), float(np.percentile(r_boot, 97.5))],
            "a": float(a[0]), "n_seeds": int(S), "n_points": int(n)}


def mean_ratio(num_S, den_S, n_boot: int = 2000, seed: int = 0) -> dict:
    """mean(num) / mean(den) over paired seeds, with a 95% bootstrap CI (the same seeds resampled for both).
    -> {'ratio', 'ci95'}"""
    num, den = np.asarray(num_S, np.float64), np.asarray(den_S, np.float64)
    resampled = np.random.default_rng(seed).integers(0, len(num), (n_boot, len(num)))
    boot = num[resampled].mean(1) / den[resampled].mean(1)
    return {"ratio": float(num.mean() / den.mean()),
            "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]}
