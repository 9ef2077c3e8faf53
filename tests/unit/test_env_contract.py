"""The Gymnasium environment's contract with a user training their own agent: keywords checked like the
settings file, which settings it uses said, evaluation periods warned about, the info dict, no step past
the episode's end, small lakes said."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from lake.config import Settings
from lake.errors import ConfigError
from rl.env import settings_with


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"train_fraction": 1.5}, r"^setting splits\.train_fraction: must be between 0 and 1 \(exclusive\)$"),
        (
            {"train_fraction": 0.9},
            r"^setting splits\.validation_fraction: train_fraction \+ validation_fraction",
        ),
        ({"embargo_days": -3}, r"^setting splits\.embargo_days: must be at least 1 \(got -3\)"),
        ({"embargo_bars": 0}, r"^setting splits\.embargo_bars: must be at least 1 \(got 0\)$"),
        (
            {"embargo_bars": 5, "embargo_days": 2},
            r"^setting splits\.embargo_bars: set embargo_bars or embargo_days",
        ),
        ({"method": "date"}, r"^setting splits\.method: method = date needs train_end and validation_end$"),
        ({"method": "dates"}, r"^setting splits\.method: must be one of fraction, date, got 'dates'$"),
        (
            {"method": "date", "train_end": "2015-06-30", "validation_end": "2013-12-31"},
            r"^setting splits\.validation_end: validation_end 2013-12-31 must be after train_end 2015-06-30$",
        ),
        (
            {"train_end": "31/12/2013"},
            r"^setting splits\.train_end: expected an ISO date \(YYYY-MM-DD\), got",
        ),
        ({"min_bars_per_symbol": "abc"}, r"^setting data\.min_bars_per_symbol: expected int, got 'abc'$"),
        ({"min_bars_per_symbol": -1}, r"^setting data\.min_bars_per_symbol: must not be negative$"),
        ({"max_missing_ratio": 2}, r"^setting data\.max_missing_ratio: must be between 0 and 1$"),
        ({"session": "night"}, r"^setting data\.session: must be one of regular, extended, got 'night'$"),
    ],
)
def test_env_keywords_are_checked_like_the_settings_file(keywords: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_with(Settings(), keywords)


def test_env_keywords_take_iso_dates_and_the_one_embargo_given() -> None:
    s, _ = settings_with(
        Settings(), {"method": "date", "train_end": "2013-12-31", "validation_end": dt.date(2015, 6, 30)}
    )
    assert (s.train_end, s.validation_end) == (dt.date(2013, 12, 31), dt.date(2015, 6, 30))
    assert s.sql_settings()["train_end"] == "2013-12-31"  # what the views read (was an AttributeError)
    s, _ = settings_with(Settings(embargo_days=10), {"embargo_bars": 30})
    assert (s.embargo_bars, s.embargo_days) == (30, None)  # the keyword given is the embargo used
    s, _ = settings_with(Settings(), {"train_fraction": 0.6, "min_bars_per_symbol": 10})
    assert (s.train_fraction, s.min_bars_per_symbol) == (0.6, 10)


def test_a_bad_keyword_is_refused_by_gymnasium_make_before_any_read(tmp_path: Any) -> None:
    import gymnasium

    import rl  # noqa: F401

    with pytest.raises(ConfigError, match=r"^setting splits\.train_fraction"):
        gymnasium.make("marketlake/Trading-v0", lake=tmp_path / "none", train_fraction=1.5)
