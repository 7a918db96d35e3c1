"""Rating-prediction evaluation of an artifact, with baselines fitted in the same run.

    RMSE, MAE   accumulated in float64

A test user's history is everything they rated in the training data: exactly what the
service would hold in Redis for them. Users absent from training have an empty history
and get the default-user prediction. Test items the model never saw cannot be scored by
it; they get the global mean plus the user's shrunk mean residual, and are counted.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from models.artifact import Artifact
from models.data.table import IdMap, RatingTable
from models.evaluation.rating_baselines import fit_baselines
from models.history import History
from models.inference.scoring import predict_ratings
from models.networks.rating import RatingModel

UNKNOWN_ITEM_SHRINK = 5.0


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    diff = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    return float(np.sqrt(np.mean(diff**2)))


def mae(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred, np.float64) - np.asarray(truth, np.float64))))


def predict_table(
    model: RatingModel,
    item_ids: IdMap,
    history_table: RatingTable,
    test: RatingTable,
    device: torch.device | str = "cpu",
    batch_users: int = 256,
) -> tuple[np.ndarray, int]:
    """Predictions for every row of `test` in its order, each as of when it was rated (what
    the rating model's session offset reads), and how many hit unknown items."""
    mean = float(model.global_mean)
    histories = histories_by_user(history_table, item_ids)
    known = np.fromiter((i in item_ids for i in test.items.tolist()), bool, len(test))
    prediction = np.empty(len(test), np.float64)

    for user, rows in _rows_by_user(test).items():
        history = histories.get(user, History.empty())
        unknown_rows = rows[~known[rows]]
        if len(unknown_rows):
            residual = float((history.ratings - mean).sum()) / (
                len(history.ratings) + UNKNOWN_ITEM_SHRINK
            )
            prediction[unknown_rows] = mean + residual
    users = list(_rows_by_user(test.take(known)).items())
    known_index = np.flatnonzero(known)
    for start in range(0, len(users), batch_users):
        chunk = users[start : start + batch_users]
        hist = [histories.get(u, History.empty()) for u, _ in chunk]
        targets = [item_ids.encode(test.items[known_index[rows]]) for _, rows in chunk]
        at = [test.timestamps[known_index[rows]].astype(np.int64) for _, rows in chunk]
        preds = predict_ratings(model, hist, targets, device, at)
        for (_, rows), p in zip(chunk, preds, strict=True):
            prediction[known_index[rows]] = p
    return np.clip(prediction, model.scale.low, model.scale.high), int((~known).sum())


def evaluate(
    artifact: Artifact,
    history_table: RatingTable,
    test: RatingTable,
    with_baselines: bool,
    device: torch.device | str = "cpu",
) -> dict:
    """One JSON-ready report: our rmse/mae/n, and the baselines' when asked."""
    started = time.perf_counter()
    pred, unknown = predict_table(
        artifact.rating_model, artifact.item_ids, history_table, test, device
    )
    report: dict = {
        "rmse": rmse(pred, test.ratings),
        "mae": mae(pred, test.ratings),
        "n": len(test),
        "unknown_items": unknown,
        "model_version": artifact.version,
        "head": artifact.rating_model.config.head,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if with_baselines:
        report["baselines"] = {}
        for baseline in fit_baselines(history_table, artifact.scale):
            p = baseline.predict(test.users, test.items)
            report["baselines"][baseline.name] = {
                "rmse": rmse(p, test.ratings),
                "mae": mae(p, test.ratings),
            }
    return report


def _rows_by_user(table: RatingTable) -> dict[str, np.ndarray]:
    """Row indices of each user's ratings."""
    order = np.argsort(table.users, kind="stable")
    users = table.users[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    return {
        str(users[s]): rows for s, rows in zip(starts, np.split(order, starts[1:]), strict=True)
    }


def histories_by_user(table: RatingTable, item_ids: IdMap) -> dict[str, History]:
    """Each user's ratings of items the model knows, oldest first (ties in row order):
    what the service would hold in Redis for them."""
    known = np.fromiter((i in item_ids for i in table.items.tolist()), bool, len(table))
    table = table.take(known)
    out = {}
    for user, rows in _rows_by_user(table).items():
        rows = rows[np.argsort(table.timestamps[rows], kind="stable")]
        out[user] = History(
            item_ids.encode(table.items[rows]), table.ratings[rows].astype(np.float32),
            table.timestamps[rows].astype(np.int64),
        )
    return out
