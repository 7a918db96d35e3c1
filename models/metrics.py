"""Error metrics, accumulated in float64."""

from __future__ import annotations

import numpy as np


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    diff = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    return float(np.sqrt(np.mean(diff**2)))


def mae(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred, np.float64) - np.asarray(truth, np.float64))))
