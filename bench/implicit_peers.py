"""Matrix-factorisation peers from the `implicit` package (benchmark extra only).

ALS (Hu, Koren & Volinsky) and BPR on the binary interaction matrix, each tuned on the same
validation split as EASE; scores are user factors times item factors.
"""

from __future__ import annotations

from typing import Self

import numpy as np
from scipy.sparse import csr_matrix


class ImplicitPeer:
    def __init__(self, kind: str, **params: float):
        self.kind, self.params = kind, params
        self.name = kind

    def fit(self, x: np.ndarray) -> Self:
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        model_class = AlternatingLeastSquares if self.kind == "als" else BayesianPersonalizedRanking
        self.model = model_class(random_state=0, **self.params)
        self.model.fit(csr_matrix(x), show_progress=False)
        return self

    def score_users(self, users: list[int]) -> np.ndarray:
        """Scores of every item for users given by their row in the fitted matrix."""
        return self.model.user_factors[users] @ self.model.item_factors.T
