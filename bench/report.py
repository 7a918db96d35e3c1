"""bench/RESULTS.md and its charts, from the newest line of each results file.

Nothing is measured here: every figure comes from bench/results/{rating,new_users,
ranking,ranker_ablation,serve,new_user_speed,scaling}.jsonl, with the date, machine,
commit and package versions of the run that wrote it. A results file that is missing is
reported as not run. The charts (`bench.charts`: quality bars with their folds and seeds,
latency against throughput, cost growth) are drawn into bench/results/ and linked from
the report. Needs matplotlib (bench extra).
The hand-written notes in bench/findings.md, where present, are appended after the tables.

    .venv/bin/python -m bench.report
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from statistics import mean, stdev

from bench.charts import bar_chart, load_chart, scaling_charts
from bench.record import RESULTS_DIR

REPORT = Path(__file__).parent / "RESULTS.md"
FINDINGS = Path(__file__).parent / "findings.md"
RANKING_METRICS = ("ndcg", "recall", "hit_rate", "mrr")


def newest(name: str, where: Callable[[dict], bool] | None = None) -> dict | None:
    """The last line of bench/results/<name>.jsonl (the last one `where` accepts, when
    given), or None when there is none."""
    path = RESULTS_DIR / f"{name}.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [row for row in rows if where is None or where(row)]
    return rows[-1] if rows else None


def _provenance(row: dict) -> str:
    versions = row.get("packages", {"torch": row["torch"]})
    packages = ", ".join(f"{name} {version}" for name, version in versions.items())
    return (f"Run {row['date']} on `{row['machine']}`, commit `{row['commit']}`, "
            f"Python {row['python']}; {packages}.")


def rating_section(row: dict | None, folds_row: dict | None) -> list[str]:
    """The newest run's first fold, and the mean over folds of the newest run that ran
    several (a later run of u1 alone would otherwise hide it)."""
    if row is None:
        return ["## Rating prediction", "", "Not run (`python -m bench.rating_quality`).", ""]
    first = str(row["folds"][0])
    per_fold = row["per_fold"][first]
    split = f"Canonical u{first} split, every model fitted on `u{first}.base` in one run"
    if any(name.endswith("_without_session") for name in per_fold):
        split += (". Ours predicts each test rating for when it was given, its session offset "
                  "weighing the history's ratings given in the minutes before "
                  "(`docs/architecture.md`); `_without_session` is the same model without "
                  "it, as the peers, which use no times")
    lines = ["## Rating prediction", "", _provenance(row), "", split + ":", "",
             "| model | RMSE | MAE | fit s |", "| --- | --- | --- | --- |"]
    for name, r in per_fold.items():
        lines.append(f"| {name} | {r['rmse']:.4f} | {r['mae']:.4f} | {r.get('train_s', '')} |")
    lines += ["", f"![u{first}](results/rating_u{first}.png)", ""]
    bar_chart(RESULTS_DIR / f"rating_u{first}.png", f"Rating prediction, MovieLens-100K u{first}",
              list(per_fold), [r["rmse"] for r in per_fold.values()], "RMSE (lower is better)")
    if folds_row is not None:
        if folds_row is not row:
            lines += ["The mean over folds is from the newest run over several. "
                      + _provenance(folds_row), ""]
        lines += _mean_over_folds(folds_row)
    return lines


def _mean_over_folds(row: dict) -> list[str]:
    """The table and chart of a run over several folds: each model's mean, sd and folds."""
    folds, mean = row["folds"], row["mean"]
    first = str(folds[0])
    only_first = [n for n in row["per_fold"][first] if n not in mean]
    lines = [f"Mean over u{', u'.join(map(str, folds))}; models run on every fold only"
             + (f" ({', '.join(only_first)}: u{first} only)" if only_first else "") + ":",
             "", "| model | RMSE | sd over folds | MAE | per fold RMSE |",
             "| --- | --- | --- | --- | --- |"]
    runs = {name: [row["per_fold"][str(f)][name]["rmse"] for f in folds] for name in mean}
    for name, r in mean.items():
        per = " ".join(f"{v:.4f}" for v in runs[name])
        lines.append(f"| {name} | {r['rmse']:.4f} | {stdev(runs[name]):.4f} | "
                     f"{r['mae']:.4f} | {per} |")
    lines += ["", "![mean](results/rating_mean.png)", ""]
    bar_chart(RESULTS_DIR / "rating_mean.png",
              f"Rating prediction, mean ± sd over {len(folds)} folds (dots: each fold)",
              list(mean), [r["rmse"] for r in mean.values()], "RMSE (lower is better)",
              runs=list(runs.values()))
    return lines


def new_users_section(row: dict | None) -> list[str]:
    if row is None:
        return ["## New users without retraining", "", "Not run (`python -m bench.new_users`).",
                ""]
    p = row["protocol"]
    results = row["results"]
    lines = ["## New users without retraining", "", _provenance(row), "",
             f"{p['new_users']} users ({p['fraction']:.0%} of those with >= {p['min_ratings']} "
             f"ratings) left out of training; the first half of each one's ratings by time "
             f"revealed ({p['revealed']} ratings), the other {p['hidden']} predicted. SVD "
             f"fold-in ridge strength {row['svd_fold_in_ridge']} (chosen on validation users).",
             "", "| model | retrains | RMSE | MAE |", "| --- | --- | --- | --- |"]
    for name, r in results.items():
        retrains = "yes" if name.endswith("_retrained") else "no"
        lines.append(f"| {name} | {retrains} | {r['rmse']:.4f} | {r['mae']:.4f} |")
    lines += ["", f"Ours / best no-retraining peer ({row['best_no_retraining_peer']}): "
              f"**{row['ratio_to_best_no_retraining_peer']:.4f}**", "",
              "![new users](results/new_users.png)", ""]
    bar_chart(RESULTS_DIR / "new_users.png", "New users without retraining, MovieLens-100K",
              list(results), [r["rmse"] for r in results.values()], "RMSE (lower is better)")
    return lines


def ranking_section(row: dict | None) -> list[str]:
    if row is None:
        return ["## Top-N ranking", "", "Not run (`python -m bench.ranking_quality`).", ""]
    results = row["results"]
    lines = ["## Top-N ranking", "", _provenance(row), "",
             "Each user's last 10 ratings held out, every unrated item ranked "
             "(`bench/ranking_quality.py`):", "",
             "| model | NDCG@10 | Recall@10 | HitRate@10 | MRR@10 |",
             "| --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[m]:.4f}" for m in RANKING_METRICS) + " |")
    lines += ["", "![ranking](results/ranking.png)", ""]
    bar_chart(RESULTS_DIR / "ranking.png", "Top-N ranking, MovieLens-100K", list(results),
              [r["ndcg"] for r in results.values()], "NDCG@10 (higher is better)")
    return lines


def by_recipe(title: str, command: str, runs: dict[str, dict | None],
              render: Callable[[str, dict], list[str]]) -> list[str]:
    """A section with the newest run of each training recipe, or the command that runs
    what is missing."""
    lines = [f"## {title}", ""]
    if not any(runs.values()):
        return lines + [f"Not run (`{command}`).", ""]
    for preset, row in runs.items():
        if row is None:
            lines += [f"Recipe `{preset}`: not run (`{command} --preset {preset}`).", ""]
        else:
            lines += render(preset, row)
    return lines


def seeds_section(runs: dict[str, dict | None]) -> list[str]:
    """Our ranker over training seeds (issue 16's top-N goal), beside EASE fitted in the
    same run."""
    return by_recipe("Top-N ranking over training seeds",
                     "python -m bench.ranker_seeds --models ours", runs, _seeds_run)


def _seeds_run(preset: str, row: dict) -> list[str]:
    ours = row["runs"]["ours"]
    lines = [f"Recipe `{preset}`. {_provenance(row)}", "",
             "The temporal split of the ranking table, `order=ranking`, seeds "
             f"{', '.join(str(s) for s in row['seeds'])} (`bench/ranker_seeds.py`):", "",
             "| model | NDCG@10 mean ± sd | Recall@10 mean | per seed NDCG@10 |",
             "| --- | --- | --- | --- |",
             _seeds_row("attentive ranker", ours),
             _seeds_row("attentive ranker without its item-to-item term",
                        [r["attention_alone"] for r in ours])]
    lines += [_seeds_row(name, found) for name, found in row["runs"].items() if name != "ours"]
    ease = row["ease"]
    return lines + [f"| ease {ease['params']} | {ease['ndcg']:.4f} | {ease['recall']:.4f} "
                    "| deterministic |", "",
                    "The item-to-item term chosen per seed (beta, unliked weight): " + ", ".join(
                        f"{r['item_item_weight']:g} / {r['item_item_unliked']:g}" for r in ours)
                    + ".", ""]


def _seeds_row(name: str, found: list[dict]) -> str:
    ndcg = [r["ndcg"] for r in found]
    spread = stdev(ndcg) if len(ndcg) > 1 else float("nan")
    return (f"| {name} | {mean(ndcg):.4f} ± {spread:.4f} | {mean(r['recall'] for r in found):.4f} "
            f"| {', '.join(f'{v:.4f}' for v in ndcg)} |")


def ablation_section(row: dict | None) -> list[str]:
    if row is None:
        return ["## Ranker ablation", "", "Not run (`python -m bench.ranker_ablation`).", ""]
    lines = ["## Ranker ablation", "", _provenance(row), "",
             f"Same split as the ranking table; EASE in the same run: "
             f"{row['ease']['ndcg']:.4f} (`bench/ranker_ablation.py`).", "",
             "| variant | seed | NDCG@10 | Recall@10 | best epoch |",
             "| --- | --- | --- | --- | --- |"]
    for r in row["runs"]:
        lines.append(f"| {r['variant']} | {r['seed']} | {r['ndcg']:.4f} | {r['recall']:.4f} "
                     f"| {r['best_epoch']} |")
    variants: dict[str, list[float]] = {}
    for r in row["runs"]:
        variants.setdefault(r["variant"], []).append(r["ndcg"])
    seeds = max(map(len, variants.values()))
    bar_chart(RESULTS_DIR / "ranker_ablation.png",
              f"Ranker ablation, NDCG@10, mean ± sd over {seeds} seeds (dots: each seed)",
              ["attentive ranker: " + v for v in variants] + ["ease"],
              [mean(v) for v in variants.values()] + [row["ease"]["ndcg"]],
              "NDCG@10 (higher is better)", runs=[*variants.values(), None])
    lines += ["", "![ranker ablation](results/ranker_ablation.png)"]
    f = row["faithfulness"]
    lines += ["", f"Faithfulness over {f['pairs']} (user, top-10 item) pairs: mean ranking-score "
              f"drop removing the most attended item {f['mean_drop_mean_hops']:.4f} (hops "
              f"averaged), {f['mean_drop_last_hop']:.4f} (last hop); a random item "
              f"{f['mean_drop_random']:.4f}.", ""]
    return lines


def non_2xx_cell(figures: dict) -> str:
    """wrk's count of non-2xx answers, with their statuses where the run recorded them."""
    statuses = ", ".join(f"{n} x {status}" for status, n in
                         figures.get("non_2xx_by_status", {}).items())
    return f"{figures['non_2xx']} ({statuses})" if statuses else str(figures["non_2xx"])


def recommendations_section(runs: dict[str, dict | None]) -> list[str]:
    """The newest run of each training recipe (runs before the recipes: `quality`)."""
    lines = by_recipe("Recommendations and reasons a person agrees with",
                      "python -m bench.recommendations", runs, _recommendations_run)
    if not any(runs.values()):
        return lines
    lever = newest("attention_lever")
    if lever is not None:
        lines += [_provenance(lever), "", "The rating model's attention on u1 "
                  "(`bench/attention_lever.py`): " + "; ".join(
                      f"{name.replace('_', ' ')}: u1 RMSE {r['u1_rmse']:.4f}, top-attention "
                      f"item the bigger lever in {r['top_attention_bigger_lever']:.1%} of pairs"
                      for name, r in lever["results"].items()) + ".", ""]
    return lines


def _recommendations_run(preset: str, row: dict) -> list[str]:
    api, ease = row["api"], row["ease"]
    lines = [f"Recipe `{preset}` (`because train --preset {preset}`). " + _provenance(row), "",
             "Temporal split, every user's past posted through the API and every user "
             f"ranked (k = 10, with explanations); like weight {row['like_weight']} "
             + ("(chosen on validation liked NDCG@10: "
                + ", ".join(f"{w}: {v:.4f}" for w, v in row["validation_liked_ndcg"].items())
                + ")" if row["validation_liked_ndcg"] else "(given: `--weight`)")
             + ". `bench/recommendations.py`.", "",
             "| order | NDCG@10 | liked NDCG@10 | top-10 predicted < 3 | reasons > 0 | "
             "reasons rated >= 4 |", "| --- | --- | --- | --- | --- | --- |"]
    for name in ("recommended", "ranking"):
        m = api[name]
        lines.append(f"| {name} | {m['ndcg']:.4f} | {m['liked_ndcg']:.4f} | "
                     f"{m['below_3_share']:.1%} | {m['reasons_positive_share']:.1%} | "
                     f"{m['reasons_liked_share']:.1%} |")
    return lines + [
        f"| EASE {ease['params']} | {ease['ndcg']:.4f} | {ease['liked_ndcg']:.4f} | | | |",
        "", f"Carousel rows with 10 items: {api['carousels']['full_share']:.1%} of "
        f"{api['carousels']['rows']} rows; items repeated within a user's rows: "
        f"{api['carousels']['repeated_items']}. The rating model's top-attention item "
        f"is the bigger lever in {row['attention_lever']['top_attention_bigger_lever']:.1%}"
        f" of {row['attention_lever']['pairs']} pairs" + _wide_lever(row) + ".", ""]


def _wide_lever(row: dict) -> str:
    """The lever on 1000 other pairs, where the run measured it (from 2026-12-07)."""
    wide = row.get("attention_lever_wide")
    if wide is None:
        return ""
    return (f" ({wide['top_attention_bigger_lever']:.1%} of {wide['pairs']} other pairs, "
            "half the sampling error)")


def fold_in_section(row: dict | None) -> list[str]:
    lines = ["## New items without retraining (fold-in)", ""]
    if row is None:
        return lines + ["Not run (`python -m bench.item_fold_in`).", ""]
    lines += [_provenance(row), "",
              "10% of the items held out of training; each evaluated item's first n ratings "
              "revealed and folded in, the rest predicted (`bench/item_fold_in.py`).", "",
              "| n | fold-in RMSE | bias-only RMSE | retrained RMSE | top-50 hits | exposure |",
              "| --- | --- | --- | --- | --- | --- |"]
    for n, r in row["results"].items():
        again = r.get("retrained")
        lines.append(f"| {n} | {r['ours']:.4f} | {r['bias_only']:.4f} | "
                     f"{'' if again is None else f'{again:.4f}'} | {r['hits']:.1%} | "
                     f"{r['exposure']:.1%} |")
    return lines + [""]


def swap_section(row: dict | None) -> list[str]:
    lines = ["## A model swap under load", ""]
    if row is None:
        return lines + ["Not run (`python -m bench.swap_load`).", ""]
    lines += [_provenance(row), "",
              f"wrk, {row['connections']} connections, `POST /v1/rank`, "
              f"{row['seconds_per_window']:g} s per window; the activation "
              f"{row['swap_at_s']:g} s into its window (`bench/swap_load.py`).", "",
              "| window | req/s | p50 ms | p99 ms | non-2xx | socket errors | versions | "
              "activation to served | RSS MiB before / peak / after |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, w in row["windows"].items():
        swap = w.get("swap") or {}
        took = f"{swap['swap_s']:.2f} s" if "swap_s" in swap else ""
        rss = swap.get("rss_mib")
        memory = "" if rss is None else " / ".join(
            f"{rss[k]:.0f}" for k in ("before", "peak", "after"))
        versions = ", ".join(f"{v}: {c}" for v, c in w["versions"].items())
        lines.append(
            f"| {name} | {w['per_second']:.1f} | {w['p50_ms']:.1f} | {w['p99_ms']:.1f} | "
            f"{w['non_2xx']} | {w['socket_errors']} | {versions} | {took} | {memory} |")
    return lines + [""]


def scale_out_section(memory: dict | None, failover: dict | None) -> list[str]:
    """Redis's bytes per rating (`bench.redis_memory`) and ratings lost across a cluster
    master's death (`bench.failover`)."""
    lines = ["## Scale-out: Redis memory and failover", ""]
    if memory is None:
        lines += ["Memory not run (`python -m bench.redis_memory`).", ""]
    else:
        lines += [_provenance(memory), "",
                  "| ratings per user | bytes per user | bytes per rating | JSON layout, per "
                  "rating |", "| --- | --- | --- | --- |"]
        for size, r in memory["per_user"].items():
            lines.append(f"| {size} | {r['bytes_per_user']:,.0f} | {r['bytes_per_rating']:.2f}"
                         f" | {r['json_bytes_per_rating']:.2f} |")
        lines += ["", f"Catalogue: {memory['catalogue_bytes_per_item']:.0f} bytes per item "
                  "(goal: at most 12 bytes per rating at 100 ratings per user).", ""]
    if failover is None:
        return lines + ["Failover not run (`python -m bench.failover`).", ""]
    lines += [_provenance(failover), "",
              "| replica behind | WAIT replicas | acknowledged | lost | answers | "
              "kill to served |", "| --- | --- | --- | --- | --- | --- |"]
    for r in failover["runs"]:
        answers = ", ".join(f"{k}: {v}" for k, v in r["answers"].items())
        lines.append(f"| {r.get('replica_lag_s', 0):g} s | {r['wait_replicas']} | "
                     f"{r['acknowledged']} | {r['lost']} | {answers} | "
                     f"{r['kill_to_served_s']:.1f} s |")
    return lines + [""]


def speed_section(serve: dict | None, new_user: dict | None, scaling: dict | None) -> list[str]:
    lines = ["## Speed", ""]
    if serve is None:
        lines += ["Load: not run (`make bench-serve`).", ""]
    else:
        lines += [_provenance(serve), "",
                  f"wrk against the service, {serve['seconds_per_run']} s per run "
                  "(`bench/serve_load.py`); p50 ms / p99 ms / requests per second / answers "
                  "other than 2xx (by status, where the service's metrics tell):", "",
                  "| endpoint | concurrency | p50 | p99 | req/s | non-2xx |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, by_c in serve["load"].items():
            for c, f in by_c.items():
                lines.append(f"| {name} | {c} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} "
                             f"| {f['per_second']:.0f} | {non_2xx_cell(f)} |")
        floor = serve["load"]["floor: HTTP + Redis GET"]["1"]["p50_ms"]
        lines.append("")
        for job, compute in serve["compute_floor"].items():
            rank = serve["load"][f"POST /v1/rank ({job})"]["1"]["p50_ms"]
            total = floor + compute["scorer_run_p50_ms"]
            lines.append(f"- Rank, {job}, c = 1: p50 {rank:.2f} ms = x{rank / total:.2f} the "
                         f"sum of the floors: HTTP + Redis {floor:.2f} ms, `Predictor.run` in "
                         f"process {compute['scorer_run_p50_ms']:.2f} ms (the ranker's forward "
                         f"alone {compute['ranker_forward_p50_ms']:.2f} ms).")
        lines.append("")
        if serve["batching_off"]:
            lines += ["Micro-batching off, rank with 1000 candidates: " + ", ".join(
                f"c = {c}: {f['per_second']:.0f} req/s" for c, f in
                serve["batching_off"].items()) + ".", ""]
        explained = serve.get("explanations")
        if explained is not None:
            lines += [f"Explanations: `/v1/rank` over the whole catalogue, k = 10, one client, "
                      f"with and without `explain` alternated: p50 "
                      f"{explained['with']['p50_ms']:.2f} ms against "
                      f"{explained['without']['p50_ms']:.2f} ms, "
                      f"x{explained['p50_ratio']:.2f} (goal: at most x1.5).", ""]
    lines += load_lines(serve, newest("serve", lambda row: max(map(len, row["load"].values())) > 1))
    lines += request_path_lines(newest("request_path", lambda row: "path" in row))
    lines += explain_lines(newest("request_path", lambda row: "explain" in row))
    recovery = newest("recovery")
    if recovery is not None:
        lines += [_provenance(recovery), "",
                  f"Redis restarted under a running service (`bench/recovery.py`): ready again "
                  f"p50 {recovery['p50_s']:.2f} s, at most {recovery['max_s']:.2f} s after Redis "
                  f"came back, over {recovery['rounds']} rounds (goal: within 2 s).", ""]
    if new_user is not None:
        lines += [_provenance(new_user), "",
                  f"New user, whole catalogue, in process (`bench/new_user_speed.py`): implicit "
                  f"ALS recalculate_user {new_user['als_recalculate_user_ms']:.3f} ms, ours "
                  f"{new_user['ours_scorer_run_ms']:.3f} ms (x{new_user['ratio']:.1f}; ranker "
                  f"forward {new_user['ours_ranker_forward_ms']:.3f} ms).", ""]
    if scaling is not None:
        lines += [_provenance(scaling), "", "Cost growth (`bench/scaling.py`, "
                  f"{scaling['device']}):", ""]
        lines += [f"![{name}](results/{path.name})"
                  for name, path in scaling_charts(scaling, RESULTS_DIR).items()]
        lines.append("")
    return lines


def load_lines(newest_run: dict | None, swept: dict | None) -> list[str]:
    """Latency against throughput (p50 and p99, one line per endpoint through its
    concurrencies), from the newest serve run that measured more than one concurrency:
    the newest run may have measured one alone."""
    if swept is None:
        return []
    off = swept.get("batching_off")
    load_chart(RESULTS_DIR / "serve_load.png",
               f"wrk against the service, {swept['seconds_per_run']} s per point, "
               f"{swept['machine']}, commit {swept['commit']}", swept["load"],
               {"POST /v1/rank (1000 candidates), micro-batching off": off} if off else None)
    levels = sorted({c for by_c in swept["load"].values() for c in by_c}, key=int)
    lines = ["Latency against throughput at concurrency " + ", ".join(levels)
             + (" (the run above)" if swept == newest_run
                else ", from the newest run that measured more than one concurrency") + ":",
             ""]
    if swept != newest_run:
        lines += [_provenance(swept), ""]
    return lines + ["![latency against throughput](results/serve_load.png)", ""]


def request_path_lines(row: dict | None) -> list[str]:
    """The request path's own cost and throughput against the CPU ceiling
    (`bench.serve_load --only path throughput`)."""
    if row is None:
        return []
    lines = [_provenance(row), ""]
    path = row.get("path")
    if path is not None:
        lines += [f"Request path, one client alternating the floor and `/v1/rank` with 10 "
                  f"candidates ({row['history_length']}-item history): p50 "
                  f"{path['rank']['p50_ms']:.2f} ms against {path['floor']['p50_ms']:.2f} ms, "
                  f"x{path['p50_ratio']:.2f} (goal: at most x3).", ""]
    for name, f in row.get("throughput", {}).items():
        lines.append(f"- {name}, wrk c = 32: {f['per_second']:.0f} req/s, server CPU "
                     f"{f['server_cpu_ms_per_request']:.2f} ms per request, x"
                     f"{f['of_ceiling']:.2f} of the ceiling (cores / CPU per request; goal "
                     f"for rank: at least x0.60), machine idle {f['machine_idle_share']:.0%}.")
    return lines + [""]


def explain_lines(row: dict | None) -> list[str]:
    """The explanation cost alone (`bench.serve_load --only explain`), the default order."""
    if row is None:
        return []
    explained = row["explain"]
    return [_provenance(row), "",
            f"Explanations, the default order: `/v1/rank` over the whole catalogue, k = 10, one "
            f"client, with and without `explain` alternated: p50 "
            f"{explained['with']['p50_ms']:.2f} ms against {explained['without']['p50_ms']:.2f} "
            f"ms, x{explained['p50_ratio']:.2f} (goal: at most x1.5).", ""]


def findings_section() -> list[str]:
    """bench/findings.md, ending in a blank line like every section (so the one before it
    already leaves one): the notes on what each run means are written by hand, so they are
    kept beside the tables rather than regenerated."""
    if not FINDINGS.exists():
        return []
    return [*FINDINGS.read_text().splitlines(), ""]


def main() -> None:
    lines = ["# Benchmarks: MovieLens-100K", "",
             f"Generated {datetime.now(UTC).isoformat(timespec='seconds')} by "
             "`python -m bench.report` from the newest line of each `bench/results/*.jsonl`; "
             "`make bench-quality` reruns everything. Attentive models are ours.", ""]
    lines += rating_section(newest("rating"), newest("rating", lambda r: len(r["folds"]) > 1))
    lines += new_users_section(newest("new_users"))
    lines += ranking_section(newest("ranking"))
    lines += seeds_section({
        preset: newest("ranker_seeds", lambda r, p=preset: bool(r["runs"].get("ours"))
                       and "attention_alone" in r["runs"]["ours"][0]
                       and r.get("ours_recipe", {}).get("preset") == p)
        for preset in ("fast", "quality")})
    lines += ablation_section(newest("ranker_ablation"))
    lines += recommendations_section({
        preset: newest("recommendations", lambda r, p=preset: r.get("preset", "quality") == p)
        for preset in ("fast", "quality")})
    lines += fold_in_section(newest("item_fold_in"))
    lines += swap_section(newest("swap_load"))
    lines += scale_out_section(newest("redis_memory"), newest("failover"))
    lines += speed_section(newest("serve"), newest("new_user_speed"), newest("scaling"))
    lines += findings_section()
    REPORT.write_text("\n".join(lines))
    print(f"wrote {REPORT} and its charts in {RESULTS_DIR}")


if __name__ == "__main__":
    main()
