"""rl.evaluate: a run evaluated after the lake's train/validation bars changed says so (its model and its
normalisation statistics come from other bars), and a run evaluated with other data settings than the given
ones names each of them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import lake
import rl.evaluate as ev
from ingest.common import bar_period
from ingest.sessions import land
from lake.config import Settings
from rl.episodes import load_period
from rl.evaluate import evaluate, record_training
from rl.market import EnvConfig
from tests.conftest import bars_table

RUN_ID = "20261201-050516-fea1c5"
ENV = EnvConfig(window=8, commission=0.001)
SETTINGS = Settings(
    min_bars_per_symbol=100,
    split_method="date",
    train_end=dt.date(2022, 12, 31),
    validation_end=dt.date(2023, 12, 31),
    embargo_days=5,
)
DAY = dt.timedelta(days=1)
START = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
DAYS = 6 * 365  # 2019 .. 2024: train to 2022, validation 2023, test 2024 (a file of its own: period=2024)


def _closes(seed: int = 1) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, DAYS)))]


def _write(root: Path, closes: list[float]) -> None:
    """Daily bars of BTCUSDT, one file a year, as an ingest lands them (a re-import rewrites each year)."""
    table = bars_table(START, closes, interval=DAY)
    ts = table.column("ts").to_pylist()
    with land(root) as w:
        for p in sorted({bar_period("1d", t) for t in ts}):
            mask = pa.array([bar_period("1d", t) == p for t in ts])
            part = {"source": "binance", "interval": "1d", "symbol": "BTCUSDT", "period": p}
            w.write(lake.BARS, part, table.filter(mask))


def _iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))).isoformat()


def _hold(obs: np.ndarray) -> np.ndarray:
    return np.ones(len(obs), dtype=np.int64)


@pytest.fixture
def trained(lake_root: Path, tmp_path: Path, monkeypatch: Any) -> Path:
    """A training run's folder as `train` leaves it and its `runs` row (record_training: the snapshot of
    the train and validation data it read); its model a fixed policy (no checkpoint to load)."""
    _write(lake_root, _closes())
    train = load_period(lake_root, SETTINGS, ["BTCUSDT"], "1d", "train", config=ENV)
    val = load_period(lake_root, SETTINGS, ["BTCUSDT"], "1d", "validation", train.norm, config=ENV)
    run_dir = tmp_path / "runs" / RUN_ID
    run_dir.mkdir(parents=True)
    saved = {
        "run_id": RUN_ID,
        "started_at": "2026-12-01T05:05:16+00:00",
        "symbols": ["BTCUSDT"],
        "interval": "1d",
        "periods": {
            p.period: {"start_at": _iso(p.bounds[0]), "end_at": _iso(p.bounds[1])} for p in (train, val)
        },
        "data_settings": SETTINGS.sql_settings(),
        "env": ENV.to_dict(),
        "lake": str(lake_root),
        "ppo": {"num_iterations": 2, "seed": 0},
    }
    (run_dir / "settings.json").write_text(json.dumps(saved))
    (run_dir / "status.json").write_text(
        json.dumps(
            {
                "status": "finished",
                "iterations": 2,
                "env_steps": 100,
                "best_iteration": 2,
                "best_score": 0.0,
                "finished_at": "2026-12-01T05:06:00+00:00",
            }
        )
    )
    record_training(lake_root, SETTINGS, run_dir)
    monkeypatch.setattr(ev, "_load_judged", lambda _d: (_hold, ENV, train.norm, None))
    return run_dir


def _notes(root: Path, run_dir: Path, settings: Settings = SETTINGS) -> tuple[list[str], ev.EvalReport]:
    noted: list[str] = []
    report = evaluate(
        root, settings, run_dir, "test", note=noted.append, resamples=400, record=False, write=False
    )
    return [n for n in noted if "train/validation data" in n], report


def test_evaluate_says_when_the_bars_the_run_trained_on_were_re_imported_changed(
    lake_root: Path, trained: Path
) -> None:
    """`ingest csv` of a symbol again with a train-period bar changed: the lake's train/validation data are
    no longer what the run trained on (its model and its normalisation statistics come from other bars), and
    the evaluation says so in a note, its report and its JSON. (was: nothing said; only the evaluation's own
    data_snapshot differed)"""
    same, report = _notes(lake_root, trained)
    assert same == []
    assert report.training_data is not None and report.training_data["changed"] is False
    assert report.to_json()["training_data"]["recorded"] == report.training_data["now"]

    # a bar of the test period (2024, a file the run never read) re-imported changed: still nothing to say
    closes = _closes()
    closes[-30] *= 1.05
    _write(lake_root, closes)
    test_only, _ = _notes(lake_root, trained)
    assert test_only == []

    # a bar of 2021 (the train period) re-imported changed
    closes[2 * 365 + 100] *= 1.05
    _write(lake_root, closes)
    (line,), changed = _notes(lake_root, trained)
    assert line.startswith(
        f"note: the train/validation data of run {RUN_ID} changed since it trained (its normalisation "
        "statistics and model come from other bars than the lake holds now"
    ), line
    assert "bars/source=binance/interval=1d/symbol=BTCUSDT/period=2021/data.parquet" in line, line
    assert "also holds bars after its periods" not in line, line  # 2021 lies wholly inside them
    got = changed.to_json()["training_data"]
    assert got["changed"] is True and got["note"] == line and got["recorded"] != got["now"]
    assert got["files"] == ["bars/source=binance/interval=1d/symbol=BTCUSDT/period=2021/data.parquet"]
    assert ev.summary(changed)["training_data"] == got  # the `runs` row keeps it too


def test_the_data_settings_note_names_each_setting_that_differs(lake_root: Path, trained: Path) -> None:
    """The run's own data settings are used: each one the given settings set otherwise is named with both
    values, in the settings file's words, as the trading settings' note does. (was: a note naming none)"""
    noted: list[str] = []
    other = Settings(min_bars_per_symbol=50, split_method="fraction", embargo_days=5)
    evaluate(lake_root, other, trained, "test", note=noted.append, resamples=400, record=False, write=False)
    (line,) = [n for n in noted if "data settings" in n]
    assert line == (
        "note: evaluating with the run's own data settings (periods, eligibility): data.min_bars_per_symbol "
        "100 (your settings say 50), splits.method date (your settings say fraction), splits.train_end "
        "2022-12-31 (your settings say unset), splits.validation_end 2023-12-31 (your settings say unset)"
    ), line
    same: list[str] = []
    evaluate(lake_root, SETTINGS, trained, "test", note=same.append, resamples=400, record=False, write=False)
    assert not [n for n in same if "data settings" in n], same
