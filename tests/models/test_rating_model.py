"""The rating model on planted data: it learns more than biases, its attention falls on the
target's cluster, new users are served without retraining; and its context sampling.
What every model keeps (batched == single, ...) is in test_model_contract.py."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from models.data.attributes import popularity_tags
from models.data.encoded import EncodedRatings
from models.data.splits import new_user_split, per_user_holdout
from models.data.synthetic import PlantedData
from models.data.table import RatingTable
from models.evaluation.rating import histories_by_user, rmse
from models.evaluation.rating_baselines import BiasBaseline
from models.history import History, chunks_by_length, pad_batch
from models.inference.scoring import predict_ratings, rating_output
from models.networks.rating import RatingModel, RatingModelConfig
from models.training import rating
from models.training.rating import (
    RatingTrainConfig,
    RatingTrainResult,
    _forward_by_context,
    _item_tags,
    _LazyAdam,
    _offset_setting,
    _offset_trials,
    _PaddedTimelines,
    _residuals,
    _rmse,
    _rmses,
    _sample_context,
    _validation_predictions,
    _within_one_standard_error,
    train_rating_model,
)
from tests.conftest import SCALE, SMALL_TRAIN


def fit(table: RatingTable) -> tuple[RatingTrainResult, EncodedRatings]:
    data = EncodedRatings.encode(table)
    return train_rating_model(data, SCALE, SMALL_TRAIN, progress=False), data


def predict_table(
    result: RatingTrainResult, data: EncodedRatings, histories: dict[str, History],
    test: RatingTable,
) -> np.ndarray:
    pred = np.empty(len(test))
    for user in np.unique(test.users):
        rows = np.flatnonzero(test.users == user)
        [p] = predict_ratings(
            result.model,
            [histories.get(str(user), History.empty())],
            [data.item_ids.encode(test.items[rows])],
        )
        pred[rows] = p
    return pred


@pytest.mark.slow
def test_learns_more_than_user_and_item_biases(planted: PlantedData) -> None:
    past, test = per_user_holdout(planted.table, 0.2, seed=3)
    result, data = fit(past)
    histories = histories_by_user(past, data.item_ids)
    ours = rmse(predict_table(result, data, histories, test), test.ratings)
    biases = rmse(BiasBaseline().fit(past).predict(test.users, test.items), test.ratings)
    assert ours < 0.8 * biases, (ours, biases)


def test_sparse_item_tables_learn_as_well_as_dense_ones(planted: PlantedData) -> None:
    # What a large catalogue trains with (lazy Adam on the rows a batch touched).
    past, test = per_user_holdout(planted.table, 0.2, seed=3)
    data = EncodedRatings.encode(past)
    histories = histories_by_user(past, data.item_ids)
    found = {}
    for sparse in (False, True):
        config = replace(SMALL_TRAIN, sparse_tables=sparse)
        result = train_rating_model(data, SCALE, config, progress=False)
        found[sparse] = rmse(predict_table(result, data, histories, test), test.ratings)
    assert found[True] < 1.1 * found[False], found


def test_sparse_tables_look_each_distinct_item_up_once_with_the_same_gradients() -> None:
    # Training with sparse tables gathers a batch's repeated items from one row each: the
    # loss and every table's gradient must be those of a lookup per slot.
    model = random_model().train()
    hist_items = torch.tensor([[3, 7, 1, 7], [7, 3, 3, 20]])
    hist_ratings = torch.tensor([[5.0, 1, 4, 2], [3, 4, 5, 1]])
    hist_mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    targets = torch.tensor([[12], [3]])
    tables = [model.structure, model.taste, model.implicit, model.item_bias]
    found = {}
    for sparse in (False, True):
        for table in tables:
            table.sparse = sparse
            table.weight.grad = None
        loss = model(hist_items, hist_ratings, hist_mask, targets).rating.square().sum()
        loss.backward()
        grads = [t.weight.grad.to_dense() if sparse else t.weight.grad for t in tables]
        found[sparse] = (loss.detach(), grads)
    torch.testing.assert_close(found[True][0], found[False][0])
    for sparse_grad, dense_grad in zip(found[True][1], found[False][1], strict=True):
        torch.testing.assert_close(sparse_grad, dense_grad)
    # One gradient row per distinct item (3, 7, 1, 20, 12), not one per slot (10).
    assert model.structure.weight.grad._nnz() == 5


def test_lazy_adam_is_adam_on_the_rows_a_step_touched() -> None:
    # Where a step's sparse gradient touches every row, lazy Adam must be torch's Adam; a
    # row no step touched keeps its value and moments.
    torch.manual_seed(0)
    lazy_table, dense_table = (torch.nn.Parameter(torch.randn(6, 4)) for _ in range(2))
    with torch.no_grad():
        dense_table.copy_(lazy_table)
    lazy, dense = _LazyAdam([lazy_table], lr=0.01), torch.optim.Adam([dense_table], lr=0.01)
    touched = torch.tensor([4, 0, 2, 1, 3])  # row 5 never
    for _ in range(5):
        grad = torch.randn(len(touched), 4)
        lazy_table.grad = torch.sparse_coo_tensor(touched[None], grad, (6, 4),
                                                  check_invariants=True)
        dense_table.grad = torch.zeros(6, 4).index_copy_(0, touched, grad)
        lazy.step()
        dense.step()
    torch.testing.assert_close(lazy_table[:5], dense_table[:5])
    torch.testing.assert_close(lazy.moments[0][1][:5], dense.state[dense_table]["exp_avg_sq"][:5])
    assert not lazy.moments[0][0][5].any()
    assert torch.equal(lazy_table[5], dense_table[5])  # Adam moves a zero-gradient row neither


def test_attention_falls_on_the_target_cluster(
    planted: PlantedData, encoded: EncodedRatings, trained: RatingTrainResult
) -> None:
    cluster_of = {f"i{i}": c for i, c in enumerate(planted.item_cluster)}
    item_ids = encoded.item_ids
    histories = histories_by_user(planted.table, item_ids)
    masses, shares = [], []
    for history in list(histories.values())[:60]:
        clusters = np.array([cluster_of[i] for i in item_ids.decode(history.items)])
        rated = set(history.items.tolist())
        for c in range(len(planted.user_likes[0])):
            candidates = [
                item_ids.index(i)
                for i, k in cluster_of.items()
                if k == c and item_ids.index(i) not in rated
            ]
            if not candidates or not (clusters == c).any():
                continue
            batch = pad_batch([history], [np.array(candidates[:1])])
            attention = rating_output(trained.model, batch).attention[0, 0].numpy()
            masses.append(attention[: len(clusters)][clusters == c].sum())
            shares.append((clusters == c).mean())
    assert len(masses) > 100
    # Attention concentrates on the target's cluster far beyond its share of the history.
    assert np.mean(masses) > 0.6, np.mean(masses)
    assert np.mean(masses) > 2 * np.mean(shares)


@pytest.mark.slow
def test_new_users_are_served_from_their_ratings_alone(planted: PlantedData) -> None:
    split = new_user_split(planted.table, fraction=0.2, min_ratings=10, seed=1)
    result, data = fit(split.train)
    assert not set(split.revealed.users) & set(split.train.users)
    revealed = histories_by_user(split.revealed, data.item_ids)
    hidden = split.hidden
    with_history = rmse(predict_table(result, data, revealed, hidden), hidden.ratings)
    default_user = rmse(predict_table(result, data, {}, hidden), hidden.ratings)
    assert with_history < 0.7 * default_user, (with_history, default_user)


def test_context_sampling_excludes_the_target_and_never_repeats() -> None:
    items = torch.tensor([[5, 6, 7, 8, 9, 0], [1, 2, 0, 0, 0, 0]])
    ratings = torch.ones_like(items, dtype=torch.float32)
    lengths = torch.tensor([5, 2])
    rng = torch.Generator().manual_seed(0)
    for _ in range(20):
        got, _, mask, _ = _sample_context(
            items, ratings, lengths, torch.tensor([7, 2]), 3, rng
        )
        first = got[0][mask[0]].tolist()
        assert len(first) == 3 and len(set(first)) == 3 and 7 not in first
        assert set(first) <= {5, 6, 8, 9}
        assert got[1][mask[1]].tolist() == [1]


def test_context_sampling_with_a_minimum_keeps_every_size_in_its_range() -> None:
    items = torch.arange(1, 41)[None, :].repeat(2, 1)
    ratings = torch.ones_like(items, dtype=torch.float32)
    lengths = torch.tensor([40, 40])
    rng = torch.Generator().manual_seed(0)
    sizes = set()
    for _ in range(200):
        got, _, mask, _ = _sample_context(
            items, ratings, lengths, torch.tensor([3, 4]), 8, rng, 2
        )
        for row, target in enumerate((3, 4)):
            kept = got[row][mask[row]].tolist()
            assert len(set(kept)) == len(kept) and target not in kept
            sizes.add(len(kept))
    assert sizes == set(range(2, 9))


@pytest.mark.parametrize("head", ["dot", "mlp2"])
def test_a_batch_cut_into_groups_by_context_size_predicts_as_one(head: str) -> None:
    model = random_model(head=head).train()
    model.mlp = model.mlp.eval() if model.mlp is not None else None  # no dropout draws
    rng = torch.Generator().manual_seed(1)
    timelines = torch.randint(0, 30, (40, 25), generator=rng)
    batch = _sample_context(timelines, torch.randint(1, 6, (40, 25), generator=rng).float(),
                            torch.randint(2, 26, (40,), generator=rng), timelines[:, 0],
                            12, rng, 1)
    whole = model(*batch[:3], batch[3][:, None])
    widths = []
    model.register_forward_pre_hook(lambda _, args: widths.append(args[0].shape[1]))
    logits, rating = _forward_by_context(model, *batch, groups=3)
    assert torch.allclose(rating, whole.rating, atol=1e-5)
    assert torch.allclose(logits, whole.logits, atol=1e-5)
    assert len(widths) == 3 and min(widths) < max(widths)  # each group cut to its own width


def test_padded_timelines_kept_for_the_run_or_padded_per_batch_are_the_same(
    planted: PlantedData, monkeypatch: pytest.MonkeyPatch,
) -> None:
    timelines = EncodedRatings.encode(planted.table).timelines
    users = np.array([3, 0, 3, 7])
    kept = _PaddedTimelines(timelines, timelines.longest)
    monkeypatch.setattr(rating, "PADDED_TIMELINES_MAX", 0)
    per_batch = _PaddedTimelines(timelines, timelines.longest)
    assert kept.every is not None and per_batch.every is None
    for a, b in zip(kept.rows(users), per_batch.rows(users), strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert kept.rows(users)[0][1].tolist()[: timelines.lengths[0]] == list(
        timelines.history(0).items)


def test_validation_by_history_length_predicts_each_user_as_alone_in_user_order(
    encoded: EncodedRatings, trained: RatingTrainResult,
) -> None:
    fit, val = per_user_holdout(encoded, 0.2, seed=0)
    model = trained.model
    found = _validation_predictions(model, fit.timelines, val, torch.device("cpu"))
    users = np.unique(val.users)
    assert len(found) == len(users) and len({len(h) for h, _, _, _ in found}) > 1
    for user, (history, predicted, truth, items) in zip(users, found, strict=True):
        rows = np.flatnonzero(val.users == user)
        assert history.items.tolist() == fit.timelines.history(user).items.tolist()
        alone = predict_ratings(model, [history], [val.items[rows]])[0]
        np.testing.assert_allclose(predicted, alone, atol=1e-5)
        np.testing.assert_array_equal(truth, val.ratings[rows])
        np.testing.assert_array_equal(items, val.items[rows])
    # The history offset's grid, chunked by length, as from one history at a time.
    config = RatingTrainConfig(history_offset_shrinks=(3.0,))
    residuals = [_residuals(model, [h], torch.device("cpu"))[0] for h, _, _, _ in found]
    errors = np.concatenate([np.clip(p + r.sum() / (len(h) + 3.0), 1, 5) - t
                             for (h, p, t, _), r in zip(found, residuals, strict=True)])
    offset = _rmses(_offset_trials(model, found, config, torch.device("cpu")))
    assert offset["3.0"] == pytest.approx(float(np.sqrt(np.mean(errors**2))), abs=1e-6)


def test_chunks_by_length_hold_every_position_once_shortest_first() -> None:
    histories = [History(np.arange(n), np.ones(n, np.float32)) for n in (5, 1, 3, 3, 0, 9)]
    chunks = chunks_by_length(histories, 4)
    assert [c.tolist() for c in chunks] == [[4, 1, 2, 3], [0, 5]]


def test_only_the_inner_product_head_trains_on_short_contexts_by_default() -> None:
    def head(name: str, **kw: object) -> RatingTrainConfig:
        return RatingTrainConfig(model=RatingModelConfig(head=name), **kw)

    assert head("dot").shortest_context == 1
    assert head("mlp2").shortest_context == RatingTrainConfig().train_context
    assert head("mlp1", train_context_min=8).shortest_context == 8


def random_model(**config: object) -> RatingModel:
    """A small model with every weight away from its initial zeros."""
    torch.manual_seed(0)
    model = RatingModel(RatingModelConfig(dim=8, hidden=(8,), **config), 30, SCALE).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
        model.item_attributes.copy_(torch.rand_like(model.item_attributes) < 0.4)
    return model


# Three item attributes, each weighed by the history offset under a ridge of 2.
ATTRIBUTED = {"attributes": ("comedy", "drama", "war"), "attribute_ridge": 2.0}
# A session offset over a minute and a half, and when the test history's items were rated:
# two a day before the prediction, three within two minutes of it.
SESSION = {"session_seconds": 90.0, "session_shrink": 2.0}
NOW = 1_700_000_000
TIMES = np.array([NOW - 86_400, NOW - 86_300, NOW - 120, NOW - 60, NOW - 5])


@pytest.mark.parametrize(
    ("head", "attentive_bias", "offset_shrink", "opinion", "every_offset"),
    [("mlp1", True, None, 1.0, False), ("mlp2", True, None, 1.0, False),
     ("dot", True, None, 1.0, False), ("dot", False, None, 1.0, False),
     ("dot", True, 3.0, 1.0, False), ("mlp1", True, 3.0, 1.0, False),
     ("dot", True, 0.0, 1.0, False), ("dot", True, 3.0, 0.0, False),
     ("mlp1", True, 3.0, 0.0, False), ("dot", True, 3.0, 1.0, True),
     ("mlp1", True, 3.0, 1.0, True)],
)
@pytest.mark.parametrize("heads", [1, 2])
def test_leave_one_out_equals_real_removal_for_every_head(
    head: str, attentive_bias: bool, offset_shrink: float | None, opinion: float,
    every_offset: bool, heads: int,
) -> None:
    """every_offset: the history offset weighs item attributes, each item has its own, the
    departure from the item's baseline is shrunk by the items read (each variant reads
    one fewer, a target in the history one fewer still), and the session offset weighs
    the residuals of the items rated near the prediction's time. heads: attention heads,
    each over its slice of the embeddings."""
    every = {**ATTRIBUTED, **SESSION, "departure_shrink": 2.0} if every_offset else {}
    model = random_model(head=head, attentive_bias=attentive_bias,
                         history_offset_shrink=offset_shrink, opinion_attention=opinion,
                         attention_heads=heads, **every)
    if every_offset:
        model.item_offsets.copy_(0.3 * torch.randn(model.n_items))
    history = History(np.array([3, 7, 1, 12, 20]), np.array([5, 1, 4, 2, 3], np.float32),
                      TIMES)
    targets, positions = np.array([7, 25, 9]), np.arange(5)
    times = (torch.from_numpy(TIMES), torch.tensor([NOW]))
    with torch.inference_mode():
        whole, attention, without = model.leave_one_out(
            *(torch.from_numpy(x) for x in (history.items, history.ratings, targets, positions)),
            times=times,
        )
    [real_whole] = predict_ratings(model, [history], [targets], at=[NOW])
    np.testing.assert_allclose(whole.numpy(), real_whole, atol=1e-5)
    real = predict_ratings(model, [history.without(p) for p in positions], [targets] * 5,
                           at=[NOW] * 5)
    np.testing.assert_allclose(without.numpy(), np.stack(real), atol=1e-5)
    if every_offset and offset_shrink is not None:  # the session offset is in what was held
        [timeless] = predict_ratings(model, [history], [targets])
        assert np.abs(timeless - real_whole).max() > 1e-3
    assert attention[0, 1] == 0.0  # target 7 is in the history: never attends to itself


def test_each_attention_head_pools_its_own_slice_of_the_embeddings() -> None:
    """Two heads, by hand: head h attends by m_i^h . m_j^h over sqrt(E / 2) (plus the
    opinion offsets) and pools its slice of T and Y; the attentive user bias and the
    attention reported use the heads' mean."""
    model = random_model(attention_heads=2)
    history = History(np.array([3, 7, 1, 12, 20]), np.array([5, 1, 4, 2, 3], np.float32))
    target = 9
    with torch.inference_mode():
        items, ratings = torch.from_numpy(history.items), torch.from_numpy(history.ratings)
        m, t, y = (table.weight[items] for table in (model.structure, model.taste,
                                                     model.implicit))
        m_i = model.structure.weight[target]
        b = model.item_bias.weight[:, 0]
        residual = ratings - model.global_mean - b[items]
        offsets = model._key_offset(ratings[None], b[items][None])[0]
        scale = model.attention_log_scale.exp() / np.sqrt(4)
        halves = [slice(0, 4), slice(4, 8)]
        heads = [torch.softmax((m[:, h] @ m_i[h]) * scale + offsets, 0) for h in halves]
        mean = (heads[0] + heads[1]) / 2
        user_bias = (mean * residual).sum() * 5 / (5 + model.config.user_bias_reg)
        weight = (residual - user_bias) / SCALE.half
        raw = sum(((a[:, None] * (weight[:, None] * t[:, h] + y[:, h])).sum(0) * m_i[h]).sum()
                  for a, h in zip(heads, halves, strict=True))
        expected = float((model.global_mean + b[target] + user_bias + raw).clamp(1, 5))
        out = model(*_history_and(history, np.array([target])))
    assert float(out.rating[0, 0]) == pytest.approx(expected, abs=1e-5)
    np.testing.assert_allclose(out.attention[0, 0].numpy(), mean.numpy(), atol=1e-6)


def test_attention_leans_toward_ratings_far_from_the_items_usual_one() -> None:
    """With every item alike to the target, the attention is the opinion offsets' softmax:
    kappa |d| + g d, d = (r - mu - b_j) / half."""
    model = random_model(opinion_attention=1.0)
    with torch.no_grad():
        model.structure.weight.fill_(0.5)
        model.opinion_slope.fill_(0.2)
    history = History(np.array([3, 7, 1, 12]), np.array([5, 1, 4, 2], np.float32))
    batch = pad_batch([history], [np.array([25])])
    with torch.inference_mode():
        attention = rating_output(model, batch).attention[0, 0].numpy()
        expected = model.global_mean + model.item_bias.weight[history.items, 0]
        departure = ((torch.from_numpy(history.ratings) - expected) / SCALE.half).numpy()
    logits = 1.0 * np.abs(departure) + 0.2 * departure
    np.testing.assert_allclose(attention, np.exp(logits) / np.exp(logits).sum(), rtol=1e-5)
    assert attention.max() > 1.5 * attention.min()  # the offsets differ: not uniform


def test_a_manifest_written_before_the_opinion_lean_loads_without_it() -> None:
    written = RatingModelConfig(dim=8).to_dict()
    del written["opinion_attention"]
    config = RatingModelConfig.from_dict(written)
    assert config.opinion_attention == 0.0
    model = RatingModel(config, 30, SCALE)
    assert model.opinion_slope is None and "opinion_slope" not in model.state_dict()


@pytest.mark.parametrize("head", ["dot", "mlp1"])
def test_an_empty_history_is_explained_by_no_item(head: str) -> None:
    """A new user's prediction is the default user's; there is nothing to leave out."""
    model = random_model(head=head, history_offset_shrink=3.0)
    targets = np.array([7, 25])
    nothing = torch.zeros(0, dtype=torch.long)
    with torch.inference_mode():
        whole, attention, without = model.leave_one_out(nothing, torch.zeros(0),
                                                         torch.from_numpy(targets), nothing)
    [real] = predict_ratings(model, [History.empty()], [targets])
    np.testing.assert_allclose(whole.numpy(), real, atol=1e-5)
    assert attention.shape == (2, 0) and without.shape == (0, 2)


def test_history_offset_is_the_shrunk_mean_residual_of_each_item_predicted_from_the_others(
) -> None:
    plain = random_model()
    calibrated = random_model(history_offset_shrink=3.0)
    history = History(np.array([3, 7, 1, 12, 20]), np.array([5, 5, 4, 5, 4], np.float32))
    targets = np.array([7, 25, 9])
    own = [predict_ratings(plain, [history.without(p)], [history.items[p : p + 1]])[0][0]
           for p in range(len(history))]
    offset = float(np.sum(history.ratings - np.array(own))) / (len(history) + 3.0)
    [raw] = predict_ratings(plain, [history], [targets])
    [shifted] = predict_ratings(calibrated, [history], [targets])
    assert abs(offset) > 0.05  # random weights: the history's items are mispredicted
    np.testing.assert_allclose(shifted, np.clip(raw + offset, SCALE.low, SCALE.high), atol=1e-5)


def test_the_session_offset_weighs_the_residuals_rated_near_the_prediction_time() -> None:
    """A prediction for time t adds sum_j w_j e_j / (sum_j w_j + lambda): e_j the residual
    of item j after the history offset, w_j = exp(-(t - t_j) / tau) for an item rated at or
    before t, 0 after it. Long after the history, it adds nothing."""
    model = random_model(history_offset_shrink=3.0, **SESSION)
    history = History(np.array([3, 7, 1, 12, 20]), np.array([5, 1, 4, 2, 3], np.float32),
                      TIMES)
    targets = np.array([7, 25, 9])
    with torch.inference_mode():
        batch = pad_batch([history], [targets])
        weights = model.history_offset(batch.hist_items, batch.hist_ratings,
                                       batch.hist_mask).weights
        mean = float(weights[0, 0])  # no attributes: the offset is one number
    # Each item predicted from the others by the model without offsets, less the offset.
    raw = np.array([predict_ratings(random_model(), [history.without(p)],
                                    [history.items[p : p + 1]])[0][0]
                    for p in range(len(history))])
    residuals = history.ratings - raw - mean
    for at in (NOW, NOW - 86_350):
        weight = np.where(TIMES <= at, np.exp(-np.abs(at - TIMES) / 90.0), 0.0)
        session = float((weight * residuals).sum() / (weight.sum() + 2.0))
        [timeless] = predict_ratings(model, [history], [targets])
        [timed] = predict_ratings(model, [history], [targets], at=[at])
        inside = (timeless > SCALE.low) & (timeless < SCALE.high)
        assert inside.sum() >= 2 and abs(session) > 0.05
        np.testing.assert_allclose(timed[inside],
                                   np.clip(timeless + session, 1, 5)[inside], atol=1e-5)
    # Beside a history predicted for no time (a micro-batch of both): each as if alone.
    timed_alone = predict_ratings(model, [history], [targets], at=[NOW])[0]
    both = predict_ratings(model, [history, history], [targets] * 2, at=[NOW, None])
    np.testing.assert_allclose(both[0], timed_alone, atol=1e-6)
    np.testing.assert_allclose(both[1], timeless, atol=1e-6)
    # A prediction a year later: the history's sitting is over.
    [later] = predict_ratings(model, [history], [targets], at=[NOW + 365 * 86_400])
    np.testing.assert_allclose(later, timeless, atol=1e-6)
    # One time per target, as evaluation predicts: each as if alone.
    [both] = predict_ratings(model, [history], [targets[:2]], at=[np.array([NOW, NOW - 86_350])])
    [first] = predict_ratings(model, [history], [targets[:1]], at=[NOW])
    [second] = predict_ratings(model, [history], [targets[1:2]], at=[NOW - 86_350])
    np.testing.assert_allclose(both, [first[0], second[0]], atol=1e-6)


def test_a_history_keeps_its_times_when_cut() -> None:
    history = History(np.array([3, 7, 1]), np.array([5, 1, 4], np.float32),
                      np.array([10, 20, 30]))
    np.testing.assert_array_equal(history.newest(2).times, [20, 30])
    np.testing.assert_array_equal(history.without(1).times, [10, 30])
    untimed = History(history.items, history.ratings)
    assert untimed.newest(2).times is None
    # A batch has times when a time is asked for; a history without times, or without a
    # time asked, is predicted for before anything was rated (no session offset).
    assert pad_batch([history], [np.array([1])]).target_times is None
    mixed = pad_batch([history, untimed, history], [np.array([1])] * 3, at=[50, 50, None])
    np.testing.assert_array_equal(mixed.hist_times, [[10, 20, 30], [0, 0, 0], [0, 0, 0]])
    assert mixed.target_times[0, 0] == 50 and (mixed.target_times[1:] < -10**18).all()
    batch = pad_batch([history, history.newest(1)], [np.array([1, 2]), np.array([4])],
                      at=[np.array([40, 50]), 60])
    np.testing.assert_array_equal(batch.hist_times, [[10, 20, 30], [30, 0, 0]])
    np.testing.assert_array_equal(batch.target_times, [[40, 50], [60, 60]])


def test_the_offset_weighs_attributes_by_a_ridge_fit_of_the_residuals() -> None:
    """w = argmin sum_j (e_j - [1, a_j] . w)^2 + lambda w_0^2 + ridge |w_attributes|^2 over
    the residuals e_j of each item predicted from the others; target i is shifted by
    [1, a_i] . w."""
    plain = random_model(attributes=ATTRIBUTED["attributes"])
    calibrated = random_model(history_offset_shrink=3.0, **ATTRIBUTED)
    history = History(np.array([3, 7, 1, 12, 20, 5]), np.array([5, 5, 4, 1, 4, 2], np.float32))
    targets = np.array([7, 25, 9])
    own = [predict_ratings(plain, [history.without(p)], [history.items[p : p + 1]])[0][0]
           for p in range(len(history))]
    features = np.hstack([np.ones((30, 1)), calibrated.item_attributes.numpy()])
    x = features[history.items]
    weights = np.linalg.solve(x.T @ x + np.diag([3.0, 2.0, 2.0, 2.0]),
                              x.T @ (history.ratings - np.array(own)))
    [raw] = predict_ratings(plain, [history], [targets])
    [shifted] = predict_ratings(calibrated, [history], [targets])
    offsets = features[targets] @ weights
    assert np.ptp(offsets) > 0.05  # the targets' attributes differ, and so do their offsets
    np.testing.assert_allclose(shifted, np.clip(raw + offsets, SCALE.low, SCALE.high), atol=1e-5)


def test_the_offset_grid_scores_each_setting_as_the_model_then_predicts() -> None:
    """Each key of the validation grid is the RMSE of what the model predicts under that
    setting: "3.0" the intercept alone, "3.0+30.0" with the attribute weights beside it."""
    model = random_model(attributes=ATTRIBUTED["attributes"])
    rng = np.random.default_rng(0)
    found = []
    for n in (4, 7, 0, 9):
        history = History(rng.permutation(30)[:n], rng.integers(1, 6, n).astype(np.float32))
        items = np.setdiff1d(np.arange(30), history.items)[:3]
        [predicted] = predict_ratings(model, [history], [items])
        found.append((history, predicted.astype(np.float64),
                      rng.integers(1, 6, 3).astype(np.float64), items))
    config = RatingTrainConfig(history_offset_shrinks=(3.0,), attribute_ridges=(30.0,))
    trials = _offset_trials(model, found, config, torch.device("cpu"))
    grid = _rmses(trials)
    assert set(grid) == {"none", "3.0", "3.0+30.0"}
    plain = np.concatenate([p for _, p, _, _ in found])
    np.testing.assert_array_equal(trials["none"][1], 0.0)
    for key in ("3.0", "3.0+30.0"):
        shrink, ridge = _offset_setting(key)
        model.config = replace(model.config, history_offset_shrink=shrink, attribute_ridge=ridge)
        predicted = np.concatenate([predict_ratings(model, [h], [items])[0]
                                    for h, _, _, items in found])
        errors = predicted - np.concatenate([truth for _, _, truth, _ in found])
        assert grid[key] == pytest.approx(float(np.sqrt(np.mean(errors**2))), abs=1e-5)
        # The offsets are what the setting added before the clip to the scale.
        inside = (predicted > SCALE.low) & (predicted < SCALE.high)
        np.testing.assert_allclose((plain + trials[key][1])[inside], predicted[inside],
                                   atol=1e-5)
    assert grid["3.0+30.0"] != grid["3.0"]


def test_of_the_settings_validation_cannot_tell_apart_the_smallest_offsets_are_kept() -> None:
    """Breiman's one-standard-error rule on paired squared errors: a setting a little
    worse than the best, within one standard error, is kept when its offsets are smaller;
    one worse by more is not, however small its offsets."""
    rng = np.random.default_rng(0)
    best = rng.normal(0, 1, 2000)
    noise = rng.normal(0, 0.05, 2000)
    offsets = rng.normal(0, 0.3, 2000)
    near = best + noise + 0.001  # worse on average by far less than the pairs' noise
    far = best * 1.2  # worse by far more
    trials = {"best": (best, offsets), "near": (near, offsets / 2), "far": (far, offsets / 9)}
    squared = {k: e**2 for k, (e, _) in trials.items()}
    excess = squared["near"] - squared["best"]
    assert 0 < excess.mean() <= excess.std() / np.sqrt(len(excess))
    assert _within_one_standard_error(trials) == "near"
    assert _within_one_standard_error({k: trials[k] for k in ("best", "far")}) == "best"
    # Alone or the best with the smallest offsets, the best is kept.
    assert _within_one_standard_error({"best": (best, offsets)}) == "best"
    assert _within_one_standard_error(
        {"best": (best, offsets / 9), "near": (near, offsets)}) == "best"


def _history_and(history: History, targets: np.ndarray) -> tuple[torch.Tensor, ...]:
    """One history and its targets as the model's (items, ratings, mask, targets)."""
    batch = pad_batch([history], [targets])
    return batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets


def test_each_target_is_shifted_by_its_item_offset() -> None:
    model = random_model(history_offset_shrink=3.0)
    history = History(np.array([3, 7, 1, 12, 20]), np.array([5, 1, 4, 2, 3], np.float32))
    targets = np.array([7, 25, 9, 11])
    [before] = predict_ratings(model, [history], [targets])
    shifts = 0.1 * torch.arange(1, model.n_items + 1, dtype=torch.float32)
    model.item_offsets.copy_(shifts)
    [after] = predict_ratings(model, [history], [targets])
    inside = (before > SCALE.low) & (before < SCALE.high)
    assert inside.sum() >= 2  # random weights: most predictions are not at the scale's ends
    np.testing.assert_allclose(after[inside], np.clip(before + shifts.numpy()[targets], 1, 5
                                                      )[inside], atol=1e-5)


def test_a_short_history_moves_the_prediction_less_from_the_items_baseline() -> None:
    """With departure_shrink k, a prediction is b + (r - b) n / (n + k): b = mu + b_i + c_i,
    r the prediction without it, n the history items the target reads (not itself)."""
    model = random_model(history_offset_shrink=3.0)
    model.item_offsets.copy_(0.2 * torch.randn(model.n_items))
    with torch.no_grad():
        model.global_mean.fill_(3.0)  # the scale's middle: departures rarely reach its ends
    history = History(np.array([3, 7, 1, 12, 20]), np.array([5, 1, 4, 2, 3], np.float32))
    targets = np.array([7, 25, 9, 11])
    short = History(history.items[:2], history.ratings[:2])
    for seen in (history, short):
        [before] = predict_ratings(model, [seen], [targets])
        model.config = replace(model.config, departure_shrink=4.0)
        [after] = predict_ratings(model, [seen], [targets])
        model.config = replace(model.config, departure_shrink=None)
        baseline = (3.0 + model.item_bias.weight[targets, 0] + model.item_offsets[targets]
                    ).detach().numpy()
        read = np.array([(seen.items != t).sum() for t in targets])
        inside = (before > SCALE.low) & (before < SCALE.high)
        assert inside.sum() >= 2  # random weights: most predictions are not at the ends
        expected = baseline + (before - baseline) * read / (read + 4.0)
        np.testing.assert_allclose(after[inside], expected[inside], atol=1e-5)
    # No history: the item's baseline itself.
    [empty] = predict_ratings(model, [History.empty()], [targets])
    model.config = replace(model.config, departure_shrink=4.0)
    [cold] = predict_ratings(model, [History.empty()], [targets])
    np.testing.assert_allclose(cold, np.clip(baseline, 1, 5), atol=1e-6)
    assert not np.allclose(cold, empty)


def test_offset_settings_are_named_by_their_grid_keys() -> None:
    assert _offset_setting("none") == (None, None)
    assert _offset_setting("3.0") == (3.0, None)
    assert _offset_setting("3.0+30.0") == (3.0, 30.0)


def test_popularity_tags_split_the_items_by_the_quantiles_of_their_rating_counts() -> None:
    counts = np.array([0, 9, 1, 7, 3, 5, 2, 8])
    assert popularity_tags(counts, 4) == [f"popularity {q}/4" for q in (1, 4, 1, 3, 2, 3, 2, 4)]
    assert popularity_tags(counts, 1) == ["popularity 1/1"] * 8
    assert popularity_tags(np.zeros(0, np.int64), 4) == []


def test_each_item_is_tagged_with_its_genres_and_its_popularity_in_the_training_data(
    encoded: EncodedRatings, trained: RatingTrainResult,
) -> None:
    """The trained model's attributes: every item in exactly one popularity bucket, the
    one its rating count in the training data falls in; without buckets, the genres alone."""
    n = len(encoded.item_ids)
    genres = [["drama"] if i % 3 else ["comedy", "war"] for i in range(n)]
    tags = _item_tags(encoded, genres, 4)
    expected = popularity_tags(np.bincount(encoded.items, minlength=n), 4)
    assert tags == [[*g, p] for g, p in zip(genres, expected, strict=True)]
    assert _item_tags(encoded, genres, 0) == genres and _item_tags(encoded, None, 0) == [[]] * n
    model = trained.model
    columns = [k for k, tag in enumerate(model.config.attributes) if tag.startswith("popularity")]
    assert len(columns) == 4 == len(model.config.attributes)  # the planted items have no genres
    marked = model.item_attributes.numpy()[:, columns]
    assert (marked.sum(axis=1) == 1).all()
    assert [model.config.attributes[columns[k]] for k in marked.argmax(axis=1)] == expected


def test_training_keeps_a_history_offset_validation_cannot_tell_from_the_best(
    trained: RatingTrainResult,
) -> None:
    grid = trained.offset_rmse
    shrinks = SMALL_TRAIN.history_offset_shrinks
    assert set(grid) == {  # the items' popularity is an attribute: each ridge beside
        "none", *map(str, shrinks),
        *(f"{s}+{r}" for s in shrinks for r in SMALL_TRAIN.attribute_ridges),
    }
    config = trained.model.config
    kept = "none" if config.history_offset_shrink is None else str(config.history_offset_shrink)
    if config.attribute_ridge is not None:
        kept += f"+{config.attribute_ridge}"
    # Kept: the best, or one within one standard error of it (not measurable from the
    # RMSEs alone: at most a hair above the best on this small split).
    assert grid[kept] <= min(grid.values()) + 0.01
    # The item offsets' grid starts from that choice, predicted as serving predicts.
    items = trained.item_offset_rmse
    assert set(items) == {"none", *map(str, SMALL_TRAIN.item_offset_shrinks)}
    assert items["none"] == pytest.approx(grid[kept], abs=1e-5)
    # Then the departure's shrinkage, from the chosen item offsets; the best is kept.
    departures = trained.departure_rmse
    assert set(departures) == {"none", *map(str, SMALL_TRAIN.departure_shrinks)}
    assert departures["none"] == min(items.values())
    shrink = config.departure_shrink
    assert departures["none" if shrink is None else str(shrink)] == min(departures.values())
    # Last the session offset, every (tau, lambda) where there is a history offset (it
    # weighs that offset's residuals), from the chosen departure; the best kept.
    sessions = trained.session_rmse
    grid = {f"{tau}+{shrink}" for tau in SMALL_TRAIN.session_seconds
            for shrink in SMALL_TRAIN.session_shrinks}
    assert set(sessions) == {"none", *(grid if config.history_offset_shrink else ())}
    assert sessions["none"] == min(departures.values())
    key = "none" if config.session_seconds is None else (
        f"{config.session_seconds}+{config.session_shrink}")
    assert sessions[key] == min(sessions.values())
    assert trained.validation_rmse == min(sessions.values())


def test_each_session_trial_is_the_validation_error_serving_would_make(
    trained: RatingTrainResult, encoded: EncodedRatings,
) -> None:
    """Each trial shares its histories' residuals across every setting; each must equal a
    whole validation pass with that setting, every target predicted for when it was rated
    (planted ratings are an hour apart: taus of hours)."""
    model = copy.deepcopy(trained.model)
    model.config = replace(model.config, history_offset_shrink=3.0, session_seconds=None,
                           session_shrink=None)
    config = replace(SMALL_TRAIN, session_seconds=(3_600.0, 36_000.0), session_shrinks=(1.0,))
    fit, val = per_user_holdout(encoded, config.val_fraction, seed=config.seed)
    cpu = torch.device("cpu")
    trials = rating._session_rmse(model, fit.timelines, val, 1.0, config, cpu)
    assert trials["none"] == 1.0 and model.config.session_seconds is None
    histories, items, truth = rating._validation_users(model, fit.timelines, val)
    at = rating._validation_times(val)
    timeless = _rmse(_validation_predictions(model, fit.timelines, val, cpu))
    for tau in config.session_seconds:
        model.config = replace(model.config, session_seconds=tau, session_shrink=1.0)
        found = predict_ratings(model, histories, items, at=at)
        whole = float(np.sqrt(np.mean((np.concatenate(found) - np.concatenate(truth)) ** 2)))
        assert trials[f"{tau}+1.0"] == pytest.approx(whole, abs=1e-6)
        assert abs(whole - timeless) > 1e-4  # the session offset is in what was compared


def test_item_offsets_are_their_raters_shrunk_mean_residual_as_serving_predicts(
    trained: RatingTrainResult, encoded: EncodedRatings,
) -> None:
    """c_i = sum of residuals / (raters + lambda) over the training users' histories (each
    item predicted from the others, with the history offset where the model has one),
    lambda the grid's choice."""
    grid = trained.item_offset_rmse
    chosen = min(grid, key=grid.get)
    found = trained.model.item_offsets.numpy()
    if chosen == "none":
        assert not found.any()
        return
    fit, _ = per_user_holdout(encoded, SMALL_TRAIN.val_fraction, seed=SMALL_TRAIN.seed)
    sums, counts = np.zeros(len(found)), np.zeros(len(found))
    model = trained.model
    for user in range(len(fit.timelines.lengths)):
        history = fit.timelines.history(user)
        with torch.inference_mode():
            own = [model(*_history_and(history.without(p), history.items[p : p + 1])
                         ).rating[0, 0].item() for p in range(len(history))]  # uncalibrated
            whole = _history_and(history, np.zeros(0, np.int64))
            offsets = 0.0
            if model.config.history_offset_shrink is not None:
                weights = model.history_offset(*whole[:3])
                offsets = model.offset_of(weights, whole[0])[0].numpy()
        np.add.at(sums, history.items, history.ratings - np.array(own) - offsets)
        np.add.at(counts, history.items, 1.0)
    np.testing.assert_allclose(found, sums / (counts + float(chosen)), atol=1e-4)
