"""What changes a training run's experiment is a warning on stderr, shown even with `-q` (which hides
progress, never facts): a symbol asked for by name (--symbols or [train] symbols) and skipped, a validation
period holding no bar of the training symbols,
no model choice on validation, and an embargo holding fewer than embargo_bars bars of the training interval
(the embargo is counted in bars of the lake's shortest interval, in trading time: a lake that also holds
minute bars gives a daily model minutes, and a symbol with no bars in it holds none)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from ingest import csv as csv_ingest
from ingest.common import RunContext
from lake.config import Settings
from tests.conftest import SPY_DAILY_SAMPLE
from tests.unit.test_ppo_train import TINY, build_lake

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SPX_MINUTES = SAMPLES / "SP500_NOV2019_IDay.csv"
TINY_TOML = "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY.items())


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _ingest(root: Path, path: Path, symbol: str, interval: str, tz: str | None) -> None:
    summary = csv_ingest.run(RunContext(root, Settings(), quiet=True), path, symbol, interval, tz)
    assert summary.ok, summary.errors


@pytest.fixture(scope="module")
def crypto_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("warn") / "lake"
    build_lake(root)  # 1m bars of BTCUSDT, ETHUSDT (eligible) and SOLUSDT (too short)
    return root


@pytest.fixture(scope="module")
def spx_minute_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One New York session of SPX minutes (2019-11-07), nothing else."""
    root = tmp_path_factory.mktemp("spx") / "lake"
    _ingest(root, SPX_MINUTES, "SPX", "1m", "America/New_York")
    return root


@pytest.fixture(scope="module")
def daily_and_minute_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SPY daily bars 2008-2017 and one session of SPX minutes: the lake's shortest interval is 1m."""
    root = tmp_path_factory.mktemp("mixed") / "lake"
    _ingest(root, SPY_DAILY_SAMPLE, "SPY", "1d", None)
    _ingest(root, SPX_MINUTES, "SPX", "1m", "America/New_York")
    return root


def _train(runner: CliRunner, root: Path, config: Path, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    r = runner.invoke(
        cli,
        [
            "--lake",
            str(root),
            "--config",
            str(config),
            "-q",
            "train",
            "--runs-dir",
            str(tmp_path / "runs"),
            *args,
        ],
    )
    return r.exit_code, r.stdout, r.stderr


def _warnings(stderr: str) -> list[str]:
    # (a log line off a terminal starts with its UTC time: left out here, the text is what is checked)
    lines = [re.sub(r"^\S+Z (?=WARNING )", "", ln) for ln in stderr.splitlines()]
    return [ln for ln in lines if ln.startswith("WARNING marketlake.train: ")]


@pytest.mark.parametrize("how", ["--symbols", "[train] symbols"])
def test_a_symbol_asked_for_and_skipped_is_a_warning_even_with_quiet(
    runner: CliRunner, crypto_lake: Path, tmp_path: Path, how: str
) -> None:
    config = tmp_path / "c.toml"
    asked = ["BTCUSDT", "SOLUSDT"]
    if how == "--symbols":
        config.write_text(f"[train]\n{TINY_TOML}\n")
        args = ["--symbols", ",".join(asked)]
    else:
        config.write_text(f"[train]\n{TINY_TOML}\nsymbols = {json.dumps(asked)}\n")
        args = []
    code, out, err = _train(runner, crypto_lake, config, tmp_path, "--no-evaluate", *args)
    assert code == 0, out + err
    (line,) = [w for w in _warnings(err) if "SOLUSDT" in w]
    assert "skipped SOLUSDT (asked for by name)" in line and "min_bars_per_symbol" in line, err
    assert "trains on BTCUSDT only" in line, err


def test_a_symbol_skipped_from_every_eligible_one_stays_progress(
    runner: CliRunner, crypto_lake: Path, tmp_path: Path
) -> None:
    """No symbol asked for: the run is every eligible symbol, and the ineligible are said as progress."""
    config = tmp_path / "c.toml"
    config.write_text(f"[train]\n{TINY_TOML}\n")
    code, out, err = _train(runner, crypto_lake, config, tmp_path, "--no-evaluate")
    assert code == 0, out + err
    assert "SOLUSDT" not in err, err


def test_an_empty_validation_period_is_a_warning_even_with_quiet(
    runner: CliRunner, crypto_lake: Path, tmp_path: Path
) -> None:
    """An embargo of a whole day right after train leaves the two-day lake's validation period empty."""
    config = tmp_path / "c.toml"
    config.write_text(
        f'[train]\n{TINY_TOML}\n[splits]\nmethod = "date"\ntrain_end = 2024-03-01\nvalidation_end = 2024-03-02\n'
        "embargo_days = 1\n"
    )
    code, out, err = _train(runner, crypto_lake, config, tmp_path, "--no-evaluate")
    assert code == 0, out + err
    (line,) = [w for w in _warnings(err) if "validation period" in w]
    assert line.startswith("WARNING marketlake.train: the validation period (2024-03-03 00:00 .. "), err
    assert "holds no 1m bar of BTCUSDT, ETHUSDT" in line and "the last checkpoint is kept" in line, err
    assert "train_end / validation_end" in line, err
    # the test period is empty too: --no-evaluate trains, and says that evaluate will have nothing
    (test,) = [w for w in _warnings(err) if "test period" in w]
    assert (
        "the test period (2024-03-03 00:00 .. 2024-03-03 00:00 UTC) holds no 1m bar of BTCUSDT, ETHUSDT: "
        in (test)
    ), err  # (of the symbols the run trains on)
    assert "`marketlake evaluate` will have nothing to judge this run on" in test, err


def test_fraction_splits_of_a_stock_minute_lake_cut_session_time_and_no_period_falls_overnight(
    runner: CliRunner, spx_minute_lake: Path, tmp_path: Path
) -> None:
    """A four-session stock minute lake (SPX 2019-11-05 .. 11-08, 1,563 bars): the fraction splits cut its
    session time, not the clock, so each period holds its share of the bars (cut clock time, validation
    fell between a close and the next open and held none): 70% and 15% of the bars less the two
    embargoes' 60 each, to the minute; training says nothing of its periods."""
    import lake

    with lake.connect(spx_minute_lake, read_only=True, settings=Settings()) as con:
        counts = dict(
            con.execute("SELECT coalesce(split, '-'), count(*) FROM bar_splits GROUP BY 1").fetchall()
        )
    total = sum(counts.values())
    assert counts["-"] == 2 * 60, counts
    usable = total - 2 * 60  # every session minute of the range has its bar (and the 16:00 bars one more)
    assert abs(counts["train"] - 0.7 * usable) <= 4 and abs(counts["validation"] - 0.15 * usable) <= 4, counts
    assert counts["test"] >= 0.15 * usable - 8, counts

    config = tmp_path / "c.toml"
    config.write_text(
        f'[data]\nmin_bars_per_symbol = 100\n[train]\n{TINY_TOML}\nsymbols = ["SPX"]\ninterval = "1m"\n'
    )
    code, out, err = _train(runner, spx_minute_lake, config, tmp_path, "--no-evaluate")
    assert code == 0, out + err
    assert _warnings(err) == [], err


def test_an_embargo_shorter_than_one_bar_of_the_training_interval_warns(
    runner: CliRunner, daily_and_minute_lake: Path, tmp_path: Path
) -> None:
    """A daily model on a lake that also holds minute bars: the default embargo is 60 minutes of session
    time, less than one daily bar, so the last train bar and the first validation bar are consecutive days: said even with -q,
    naming the setting to raise; with embargo_days set (the promise is then whole days), nothing is said."""
    config = tmp_path / "c.toml"
    body = f'[train]\n{TINY_TOML}\nsymbols = ["SPY"]\ninterval = "1d"\n'
    config.write_text(body)
    code, out, err = _train(runner, daily_and_minute_lake, config, tmp_path, "--no-evaluate")
    assert code == 0, out + err
    (line,) = [w for w in _warnings(err) if "embargo" in w]  # (SPY ends before the test period: said too)
    assert "the embargo between the train and validation periods (" in line, err
    assert (
        "[splits] embargo_bars = 60 is that many bars of the lake's shortest interval in trading time)"
        in line
    )
    span = re.search(r"UTC, (\d+) minute\(s\): ", line)
    assert span is not None and 60 <= int(span.group(1)) < 1440, err  # 60 session minutes: under a day
    assert "holds fewer than 60 1d bars of the training symbols (1d bars in it: SPY " in line, err
    assert "set [splits] embargo_days = 86" in line, err  # 60 trading days, 5 a week, and a weekend

    config.write_text(body + "[splits]\nembargo_days = 60\n")
    code, out, err = _train(runner, daily_and_minute_lake, config, tmp_path, "--no-evaluate")
    assert code == 0, out + err
    assert [w for w in _warnings(err) if "embargo" in w] == [], err


def test_the_embargo_of_a_stock_minute_lake_counts_session_time_and_holds_its_bars(
    runner: CliRunner, spx_minute_lake: Path, tmp_path: Path
) -> None:
    """A 1m stock lake (SPX, 2019-11-05 .. 11-08) with date splits at 00:00 UTC: the 60-bar embargo is 60
    minutes of session time, not of the clock (which would fall in the closed market, 00:00 .. 01:00 UTC,
    and hold no bar): it is the next session's first hour, 14:30 .. 15:30 UTC, holding 60 bars of SPX, so
    the last train bar and the first validation bar are 60 bars apart and nothing is said."""
    import lake
    from features.splits import load_splits

    s = Settings(split_method="date", train_end=_date("2019-11-05"), validation_end=_date("2019-11-06"))
    with lake.connect(spx_minute_lake, read_only=True, settings=s) as con:
        periods = {p.name: (p.start_at, p.end_at) for p in load_splits(con)}
        held = con.execute("SELECT count(*) FROM bar_splits WHERE split IS NULL").fetchone()
    assert [f"{t:%m-%d %H:%M}" for t in periods["validation"]] == ["11-06 15:30", "11-07 00:00"], periods
    assert f"{periods['test'][0]:%m-%d %H:%M}" == "11-07 15:30", periods
    assert held == (2 * 60,)  # each embargo holds its 60 bars (the sample has a bar at 16:00 New York too)

    config = tmp_path / "c.toml"
    config.write_text(
        f"[train]\n{TINY_TOML}\n[data]\nmin_bars_per_symbol = 100\n"
        '[splits]\nmethod = "date"\ntrain_end = 2019-11-05\nvalidation_end = 2019-11-06\n'
    )
    code, out, err = _train(runner, spx_minute_lake, config, tmp_path, "--no-evaluate")
    assert code == 0, out + err
    assert [w for w in _warnings(err) if "embargo" in w] == [], err


def test_an_embargo_where_a_stock_has_no_bars_warns_with_the_bars_it_holds(
    runner: CliRunner, tmp_path: Path
) -> None:
    """The same lake without the session of 11-06 (a day missing from the data): the embargo after train is
    still 11-06 14:30 .. 15:30 UTC, where SPX has no bar, so the last train bar (11-05) and the first
    validation bar (11-07) are consecutive bars of SPX: said even with -q, with the bars it holds and the
    embargo_days to set; the embargo after validation holds its 60 bars and is not named; with
    embargo_days set (whole days promised), nothing is said."""
    lines = SPX_MINUTES.read_text().splitlines(keepends=True)
    csv = tmp_path / "SP500_NOV2019_IDay.csv"
    csv.write_text("".join(x for x in lines if not x.startswith("11/6/2019")))
    root = tmp_path / "lake"
    _ingest(root, csv, "SPX", "1m", "America/New_York")
    config = tmp_path / "c.toml"
    body = (
        f"[train]\n{TINY_TOML}\n[data]\nmin_bars_per_symbol = 100\n"
        '[splits]\nmethod = "date"\ntrain_end = 2019-11-05\nvalidation_end = 2019-11-07\n'
    )
    config.write_text(body)
    code, out, err = _train(runner, root, config, tmp_path, "--no-evaluate")
    assert code == 0, out + err
    (line,) = [w for w in _warnings(err) if "embargo" in w]
    assert (
        "the embargo between the train and validation periods (2019-11-06 00:00 .. 2019-11-06 15:30 UTC"
        in line
    ), err
    assert "embargo_bars = 60 is that many bars of the lake's shortest interval in trading time" in line, err
    assert "holds fewer than 60 1m bars of the training symbols (1m bars in it: SPX 0)" in line, err
    assert "set [splits] embargo_days = 4" in line, err

    config.write_text(body + "embargo_days = 1\n")
    code, out, err = _train(runner, root, config, tmp_path, "--no-evaluate")
    assert code == 0, out + err
    assert [w for w in _warnings(err) if "embargo" in w] == [], err


def test_a_batch_size_above_the_rollout_known_only_from_the_data_is_a_warning_and_recorded(
    runner: CliRunner, crypto_lake: Path, tmp_path: Path
) -> None:
    """batch_size above an iteration's samples was cut to the whole rollout without a word, and settings.json
    recorded the batch_size asked for. With an automatic episode length (known when the data is read) it is a
    warning even with -q, and the minibatch the run uses is recorded."""
    tiny = {k: v for k, v in TINY.items() if k != "episode_length"}
    tiny |= {"num_iterations": 1, "episodes_per_iteration": 2, "batch_size": 10**7}
    config = tmp_path / "c.toml"
    config.write_text("[train]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in tiny.items()) + "\n")
    code, out, err = _train(runner, crypto_lake, config, tmp_path, "--no-evaluate", "--symbols", "BTCUSDT")
    assert code == 0, out + err
    (line,) = [w for w in _warnings(err) if "batch_size" in w]
    (run_dir,) = (tmp_path / "runs").iterdir()
    saved = json.loads((run_dir / "settings.json").read_text())
    size = 2 * saved["episode_length"]
    assert line == (
        f"WARNING marketlake.train: batch_size 10000000 is more than an iteration's rollout holds ({size} "
        f"samples: 2 episodes of {saved['episode_length']} steps), so each minibatch would be the whole "
        f"rollout: set batch_size to at most {size}, or raise episodes_per_iteration; the run goes on with "
        f"minibatches of {size}"
    ), err
    assert saved["minibatch"] == size and saved["ppo"]["batch_size"] == 10**7


def test_a_batch_size_within_the_rollout_says_nothing_and_records_it(
    runner: CliRunner, crypto_lake: Path, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[train]\n{TINY_TOML}\n")
    code, out, err = _train(runner, crypto_lake, config, tmp_path, "--no-evaluate", "--iterations", "1")
    assert code == 0, out + err
    assert not [w for w in _warnings(err) if "batch_size" in w], err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "settings.json").read_text())["minibatch"] == TINY["batch_size"]


def test_the_evaluation_after_training_shows_its_notes_even_with_quiet(
    runner: CliRunner, crypto_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train -q` evaluates the chosen model: that evaluation's notes (here a stand-in for "the test period
    moved") reach stderr as `marketlake evaluate -q`'s do (they went through the silenced `say`)."""
    import rl.evaluate as ev

    real = ev.evaluate

    def noting(*args: object, **kw: object) -> object:
        tell = kw.get("note") or kw["say"]
        tell("note: the lake's test period now starts later (a stand-in)")  # type: ignore[operator]
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ev, "evaluate", noting)
    config = tmp_path / "c.toml"
    config.write_text(f"[train]\n{TINY_TOML}\n")
    code, out, err = _train(runner, crypto_lake, config, tmp_path, "--symbols", "BTCUSDT")
    assert code == 0, out + err
    assert "note: the lake's test period now starts later (a stand-in)" in err, err
