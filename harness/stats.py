"""Aggregate statistics through rliable: IQM with stratified-bootstrap CIs, probability of improvement.

rliable draws its bootstrap indices from numpy's *global* generator (its `random_state`
argument does not reach the resampling), so every call here re-seeds `np.random` right before
calling rliable: the same scores and seed always give the same interval. Inputs are checked
first: rliable silently returns NaN for NaN scores and cannot take ragged arrays.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_REPS = 2000
DEFAULT_SEED = 0


def as_score_matrix(scores, name: str = "scores") -> np.ndarray:
    """A finite (runs, tasks) float array; a 1-D list is one task. Ragged or non-finite input raises."""
    if isinstance(scores, np.ndarray):
        array = scores.astype(float)
    else:
        rows = list(scores)
        if rows and all(np.ndim(r) == 1 for r in rows):
            lengths = {len(r) for r in rows}
            if len(lengths) > 1:
                raise ValueError(f"{name} are ragged: rows have {sorted(lengths)} entries; every run needs a score for every task")
        try:
            array = np.asarray(rows, dtype=float)
        except ValueError as err:
            raise ValueError(f"{name} are ragged or not numeric: {err}") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty (runs, tasks) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{name} contain a non-finite value ({array[tuple(bad)]}) at run {bad[0]}, task {bad[1]}")
    return array


def iqm_with_ci(score_dict: dict[str, object], reps: int = DEFAULT_REPS, seed: int = DEFAULT_SEED, ci: float = 0.95):
    """Per method: (IQM, (low, high)) with a `ci` stratified (over tasks) percentile bootstrap."""
    from rliable import library as rly
    from rliable import metrics

    checked = {name: as_score_matrix(s, f"scores of {name}") for name, s in score_dict.items()}
    np.random.seed(seed)
    points, intervals = rly.get_interval_estimates(
        checked, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps, confidence_interval_size=ci
    )
    return {name: (float(points[name][0]), (float(intervals[name][0, 0]), float(intervals[name][1, 0]))) for name in checked}


def probability_of_improvement(x, y, reps: int = DEFAULT_REPS, seed: int = DEFAULT_SEED, ci: float = 0.95):
    """P(X > Y) over runs (Mann-Whitney, ties count half), averaged over tasks, with a bootstrap CI."""
    from rliable import library as rly
    from rliable import metrics

    sx, sy = as_score_matrix(x, "scores of X"), as_score_matrix(y, "scores of Y")
    if sx.shape[1] != sy.shape[1]:
        raise ValueError(f"X and Y must cover the same tasks, got {sx.shape[1]} and {sy.shape[1]}")
    np.random.seed(seed)
    points, intervals = rly.get_interval_estimates(
        {"X,Y": (sx, sy)}, metrics.probability_of_improvement, reps=reps, confidence_interval_size=ci
    )
    low, high = np.asarray(intervals["X,Y"], dtype=float).ravel()
    return float(np.asarray(points["X,Y"]).item()), (float(low), float(high))


def spread(values, name: str = "scores", reps: int = DEFAULT_REPS, seed: int = DEFAULT_SEED) -> dict[str, float]:
    """One table cell's numbers over seeds: mean, std, iqm, iqm_ci_low, iqm_ci_high (all NaN when there are no values)."""
    if len(values) == 0:
        return dict.fromkeys(("mean", "std", "iqm", "iqm_ci_low", "iqm_ci_high"), math.nan)
    iqm, (low, high) = iqm_with_ci({name: values}, reps=reps, seed=seed)[name]
    # The sample standard deviation (ddof 1): the seeds are a sample of the method's outcomes.
    std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return {"mean": float(np.mean(values)), "std": std, "iqm": iqm, "iqm_ci_low": low, "iqm_ci_high": high}
