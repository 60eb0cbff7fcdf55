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
