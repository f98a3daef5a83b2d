"""Backtest metrics, honest count intervals under a moving rate, and recalibration."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from scipy.special import expit, logit

from upgrade_predictor.errors import InputError
from upgrade_predictor.forecast.backtest import (
    TENURE_BANDS,
    Ranked,
    backtest_table,
    count_interval,
    origin_count,
    overdispersion_from_origins,
    recalibrate,
    slice_metrics,
    top_decile_lift,
)
from upgrade_predictor.forecast.design import TimeSplit
from upgrade_predictor.forecast.protocol import AGGREGATED, OriginResult, model_key

Z95 = 1.959964


def test_top_decile_lift_by_hand() -> None:
    # 20 rows, 2 positives: the top decile (2 rows) holds one -> precision 0.5 over a base rate of 0.1.
    p = np.linspace(1, 0.05, 20)
    y = np.zeros(20)
    y[[0, 10]] = 1
    assert top_decile_lift(y, p) == pytest.approx(5.0)
    # All tied: the top decile is an average slice, lift 1, whatever the row order.
    assert top_decile_lift(y, np.full(20, 0.3)) == pytest.approx(1.0)
    assert np.isnan(top_decile_lift(np.zeros(20), p))


def test_slice_metrics_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    m = slice_metrics("hand", y, p)
    assert m.roc_auc == pytest.approx(0.75)  # 3 of the 4 positive-negative pairs ordered right
    assert m.pr_auc == pytest.approx((1 + 2 / 3) / 2)  # precision 1 at the first positive, 2/3 at the second
    assert m.brier == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert m.expected == pytest.approx(1.65) and m.actual == 2 and m.positives == 2 and m.rows == 4
    assert m.covered == (m.expected_low <= 2 <= m.expected_high)


def test_slice_metrics_with_one_class_is_nan_not_an_error() -> None:
    m = slice_metrics("no upgrades", np.zeros(5), np.full(5, 0.1))
    assert np.isnan(m.roc_auc) and np.isnan(m.pr_auc) and np.isnan(m.top_decile_lift)
    assert m.brier == pytest.approx(0.01) and m.actual == 0
    empty = slice_metrics("empty", np.zeros(0), np.zeros(0))
    assert empty.rows == 0 and np.isnan(empty.brier)


def test_count_interval_by_hand() -> None:
    p = np.full(100, 0.5)  # mean 50, Poisson-binomial sd 5
    low, high = count_interval(p)
    assert low == pytest.approx(50 - Z95 * 5 - 0.5, rel=1e-5)
    assert high == pytest.approx(50 + Z95 * 5 + 0.5, rel=1e-5)
    low4, high4 = count_interval(p, overdispersion=4.0)  # sd doubles
    assert high4 - low4 == pytest.approx(2 * (high - low) - 1, rel=1e-5)
    assert count_interval(np.full(10, 0.01))[0] == 0.0  # clipped at zero
    with pytest.raises(InputError):
        count_interval(p, overdispersion=0.5)


def test_overdispersion_by_hand() -> None:
    # Standardised errors +1 and -2: mean square (1 + 4) / 2.
    assert overdispersion_from_origins([(100, 110, 100), (100, 80, 100)]) == pytest.approx(2.5)
    assert overdispersion_from_origins([(100, 101, 100)]) == 1.0  # floored
    assert overdispersion_from_origins([origin_count([1, 0, 0, 1], [0.5] * 4)]) == 1.0
    with pytest.raises(InputError):
        overdispersion_from_origins([])


def _period(rng: np.random.Generator, rate_sd: float, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """One month of free users: the model's p, and outcomes drawn after the true rate moved in log-odds."""
    p = rng.beta(1, 15, n)
    shift = rng.normal(0, rate_sd)
    y = (rng.random(n) < expit(logit(p) + shift)).astype(int)
    return y, p


def _coverage(rng: np.random.Generator, rate_sd: float) -> tuple[float, float, float]:
    """Overdispersion from 40 backtest origins, then coverage of both intervals over 400 later periods."""
    phi = overdispersion_from_origins([origin_count(*_period(rng, rate_sd)) for _ in range(40)])
    honest = naive = 0
    periods = 400
    for _ in range(periods):
        y, p = _period(rng, rate_sd)
        low, high = count_interval(p, overdispersion=phi)
        honest += low <= y.sum() <= high
        low, high = count_interval(p)
        naive += low <= y.sum() <= high
    return phi, honest / periods, naive / periods


def test_overdispersed_interval_covers_the_truth_when_the_rate_moves() -> None:
    phi, honest, naive = _coverage(np.random.default_rng(7), rate_sd=0.35)
    assert phi > 3
    assert 0.90 <= honest <= 0.99
    assert naive < 0.7  # binomial noise alone is far too narrow for a moving rate


def test_a_stable_rate_needs_no_widening() -> None:
    phi, honest, naive = _coverage(np.random.default_rng(8), rate_sd=0.0)
    assert phi < 1.6
    assert 0.90 <= naive <= 0.99 and honest >= naive


def test_backtest_table_has_every_band_and_the_bands_add_up() -> None:
    rng = np.random.default_rng(0)
    frames = {}
    for name in ("2022-06", "2022-07"):
        tenure = rng.integers(0, 120, 3000)
        p = expit(-3 - tenure / 60 + rng.normal(0, 1, 3000))
        frames[name] = ((rng.random(3000) < p).astype(int), p, tenure)
    table = backtest_table(frames, overdispersion=2.0)
    bands = ["all"] + [b for b, _, _ in TENURE_BANDS]
    assert list(table["band"]) == bands * 2 and list(table["origin"].unique()) == ["2022-06", "2022-07"]
    for _, g in table.groupby("origin"):
        parts = g[g["band"] != "all"]
        whole = g[g["band"] == "all"].iloc[0]
        assert parts["rows"].sum() == whole["rows"] and parts["positives"].sum() == whole["positives"]
        assert parts["expected"].sum() == pytest.approx(whole["expected"])
    assert (table["expected_low"] <= table["expected"]).all() and (
        table["expected"] <= table["expected_high"]
    ).all()


def test_recalibration_restores_the_mean_on_a_shifted_period() -> None:
    rng = np.random.default_rng(3)

    def shifted(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = rng.beta(1, 20, n)
        true = expit(logit(p) + 0.8)  # the rate rose since training
        return p, true, (rng.random(n) < true).astype(int)

    p_recent, _, y_recent = shifted(20000)
    p_new, true_new, _ = shifted(20000)
    assert p_new.mean() < 0.75 * true_new.mean()  # before: far too low
    fixed = recalibrate(p_recent, y_recent, p_recent, method="intercept")
    assert fixed.mean() == pytest.approx(y_recent.mean(), rel=1e-6)  # exact on the period it was fitted on
    assert np.array_equal(np.argsort(fixed, kind="stable"), np.argsort(p_recent, kind="stable"))
    for method in ("intercept", "platt"):
        out = recalibrate(p_recent, y_recent, p_new, method=method)
        assert out.mean() == pytest.approx(true_new.mean(), rel=0.08)


def test_platt_recovers_a_changed_slope() -> None:
    rng = np.random.default_rng(4)
    p = rng.beta(1, 10, 30000)
    true = expit(0.5 * logit(p) - 1.0)  # over-confident model
    y = (rng.random(len(p)) < true).astype(int)
    grid = np.array([0.01, 0.05, 0.2, 0.5])
    out = recalibrate(p, y, grid, method="platt")
    np.testing.assert_allclose(out, expit(0.5 * logit(grid) - 1.0), rtol=0.1)


def test_recalibration_refuses_bad_input() -> None:
    with pytest.raises(InputError, match="one class"):
        recalibrate([0.1, 0.2], [0, 0], [0.3])
    with pytest.raises(InputError, match="unknown"):
        recalibrate([0.1, 0.2], [0, 1], [0.3], method="isotonic")


def test_an_origin_tells_the_models_predictions_from_the_baselines() -> None:
    day = date(2022, 1, 1)
    split = TimeSplit(np.arange(3), np.arange(3, 5), day, day, day, day, 30)
    p = {model_key("none"): np.zeros(2), model_key("sigmoid"): np.ones(2)}
    p.update({"base rate": np.full(2, 0.1), AGGREGATED: np.full(2, 0.2)})
    origin = OriginResult(split, p, np.zeros(2), {}, 3)
    assert origin.model("sigmoid") is p[model_key("sigmoid")]
    assert list(origin.baselines()) == ["base rate", AGGREGATED]


def test_ranked_metrics_equal_the_resample_written_out() -> None:
    """Weighted PR AUC and lift (one sort, many resamples) equal scikit-learn's and `top_decile_lift` on
    the same resample with every drawn row repeated, ties included."""
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(4)
    y = (rng.random(3000) < 0.08).astype(int)
    p = np.round(np.clip(0.05 + 0.1 * y + rng.normal(0, 0.05, 3000), 0.001, 0.999), 2)  # many ties
    ranked = Ranked(y, p)
    for _ in range(5):
        w = rng.poisson(1.0, len(y))
        rows = np.repeat(np.arange(len(y)), w)
        assert ranked.pr_auc(w.astype(float)) == pytest.approx(
            average_precision_score(y[rows], p[rows]), abs=1e-12
        )
        assert ranked.top_decile_lift(w.astype(float)) == pytest.approx(
            top_decile_lift(y[rows], p[rows]), abs=1e-12
        )
    ones = np.ones(len(y))
    assert ranked.pr_auc(ones) == pytest.approx(average_precision_score(y, p), abs=1e-12)
