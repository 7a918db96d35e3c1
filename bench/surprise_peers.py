"""Rating-prediction peers from the Surprise package (benchmark extra only).

Each peer is fitted on a RatingTable and predicts rows of another, clipped to the rating
scale as Surprise does; Surprise's own settings except a fixed seed and, for KNNBaseline,
item-based Pearson-baseline similarity (its documented strongest set-up, and the one whose
neighbours are the items a user rated, like ours):

    BaselineOnly   mu + b_u + b_i, ALS (reg_i 10, reg_u 15, 10 epochs)
    SVD            biased MF, 100 factors, SGD 20 epochs
    SVDpp          SVD++ (implicit feedback of what a user rated), 20 factors, 20 epochs
    KNNBaseline    baseline + 40 most similar rated items' residuals
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from models.data.table import RatingScale, RatingTable

SEED = 0


def surprise_peers() -> dict[str, Callable[[], Any]]:
    """{name: constructor} of the four peers, in the order tables list them."""
    from surprise import SVD, BaselineOnly, KNNBaseline, SVDpp

    return {
        "surprise_baseline_only": lambda: BaselineOnly(verbose=False),
        "surprise_svd": lambda: SVD(random_state=SEED),
        "surprise_svdpp": lambda: SVDpp(random_state=SEED),
        "surprise_knn_baseline": lambda: KNNBaseline(
            sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False
        ),
    }


def to_trainset(table: RatingTable, scale: RatingScale) -> Any:
    """A Surprise Trainset holding every row of `table`."""
    import pandas as pd
    from surprise import Dataset, Reader

    frame = pd.DataFrame(
        {"user": table.users, "item": table.items, "rating": table.ratings.astype(np.float64)}
    )
    reader = Reader(rating_scale=(scale.low, scale.high))
    return Dataset.load_from_df(frame, reader).build_full_trainset()


def predict_rows(algo: Any, table: RatingTable) -> np.ndarray:
    """(n,) predictions for table's rows in order; unknown users or items get Surprise's
    fallback (the known baseline parts, or the global mean)."""
    return np.fromiter(
        (algo.predict(u, i).est for u, i in zip(table.users.tolist(), table.items.tolist(),
                                                  strict=True)),
        np.float64, len(table),
    )
