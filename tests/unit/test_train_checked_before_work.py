"""`marketlake train` refuses what it can know is wrong before any work, and before a run is recorded: a bad
[train] key or value of the config file (when the file is loaded, by every command, naming the file, the key
and the line), a bad flag (a usage error naming the flag), a symbol or interval the lake does not hold. Only
a run that really started and then failed is a `failed` row of `runs`. `--set KEY=VALUE` overrides any
[train] key, checked like the file's value."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli
from ingest.common import INTERVALS
from lake.config import CPU_COUNT, TRAIN_INTERVALS, TRAIN_RULES, check_train_value
from rl import runlog
from rl.market import EnvConfig
from rl.ppo import PPO, PPOConfig
from rl.train import RunOptions, train_keys
from tests.unit.test_ppo_train import TINY, build_lake

TINY_SETS = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def tiny_sets(**changed: Any) -> list[str]:
    """TINY_SETS with some keys changed (a key may be given once: `--set` refuses it twice)."""
    return [a for k, v in {**TINY, **changed}.items() for a in ("--set", f"{k}={json.dumps(v)}")]


@pytest.fixture(scope="module")
def train_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checked") / "lake"
    build_lake(root)  # 1m bars of BTCUSDT, ETHUSDT (eligible) and SOLUSDT (too short)
    return root


def _train_runs(root: Path) -> list[dict[str, Any]]:
    return runlog.list_runs(root, kind="train")


# --- the [train] table of the file ------------------------------------------------------------------------


def test_the_train_rules_know_exactly_the_keys_rl_reads() -> None:
    assert set(TRAIN_RULES) == set(train_keys())
    assert set(TRAIN_INTERVALS) == set(INTERVALS)


GOOD: dict[str, list[Any]] = {
    "hidden_sizes": [[32, 32], "16,16"],
    "device": ["cpu", "auto"],
    "slippage": ["bps", "range"],
    "interval": ["1m", "1d"],
    "symbols": [["BTCUSDT"], "AAPL,SPY"],
    "commission": [0, 0.0005],
    "target_kl": [0, 0.02],
}


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, vs in GOOD.items() for v in vs])
def test_what_the_train_rules_take_rl_takes_too(key: str, value: Any) -> None:
    """A value the file's check lets through is one rl/ builds its configs from (the two checks agree)."""
    from lake.config import Settings
    from rl.train import read_train_settings

    taken = check_train_value(key, value)
    read_train_settings(Settings(train={key: taken}))


def test_every_default_of_rl_passes_the_train_rules() -> None:
    defaults = {
        **PPOConfig().to_json(),
        **EnvConfig().to_dict(),
        **{f.name: getattr(RunOptions(), f.name) for f in dataclasses.fields(RunOptions)},
    }
    for key, value in defaults.items():
        if value is not None:
            check_train_value(key, value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("windw = 20", "key 'train.windw': unknown setting (did you mean 'window'? known: "),
        ('commission = "0.1%"', "key 'train.commission': expected a number, got '0.1%'"),
        ("commission = 1.5", "key 'train.commission': must be below 1"),
        ("num_iterations = 0", "key 'train.num_iterations': must be at least 1"),
        ('interval = "1x"', "key 'train.interval': must be one of 1m, 5m, 15m, 1h, 1d"),
        ('device = "gpu"', "key 'train.device': must be one of auto, cpu, cuda, cuda:N"),
        ("allow_short = 1", "key 'train.allow_short': expected true or false"),
        ('symbols = ["../x"]', "key 'train.symbols': invalid symbol"),
        (
            'symbols = ["SPY", "AAPL", "SPY"]',
            "key 'train.symbols': SPY given twice in ['SPY', 'AAPL', 'SPY']: list each symbol once",
        ),
        ("hidden_sizes = 64", "key 'train.hidden_sizes': expected a non-empty list of whole numbers"),
        ('device = "cuda:N"', "key 'train.device': must be one of auto, cpu, cuda, cuda:N, got 'cuda:N'"),
        (
            "seed = 18446744073709551616",
            "key 'train.seed': must be at most 18446744073709551615 (2**64 - 1, the largest seed torch takes)",
        ),
        ("learning_rate = 1e308", "key 'train.learning_rate': must be at most 1, got 1e+308"),
    ],
)
def test_check_refuses_a_bad_train_setting_naming_file_key_and_line(
    runner: CliRunner, tmp_path: Path, line: str, message: str
) -> None:
    config = tmp_path / "mine.toml"
    config.write_text(f"[data]\ndata_days = 3\n\n[train]\nwindow = 8\n{line}\n", encoding="utf-8")
    r = runner.invoke(cli, ["--config", str(config), "--lake", str(tmp_path / "lake"), "check"])
    assert r.exit_code == 1, r.output
    assert f"error: {config}, line 6: {message}" in r.output, r.output
    said = [line for line in r.output.strip().splitlines() if not line.startswith("settings: ")]
    assert len(said) == 1 and "Traceback" not in r.output, r.output  # one line (after the settings file's)
    assert not (tmp_path / "lake").exists()


def _no_store_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    def refresh(_run: Any) -> None:
        raise AssertionError("the feature store was refreshed before the command was refused")

    monkeypatch.setattr("cli.ingest._refresh_store", refresh)


def test_train_refuses_a_bad_train_setting_before_refreshing_the_store(
    runner: CliRunner, train_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_store_refresh(monkeypatch)
    config = tmp_path / "mine.toml"
    config.write_text("[train]\nwindw = 20\n", encoding="utf-8")
    before = _train_runs(train_lake)
    r = runner.invoke(
        cli,
        ["--config", str(config), "--lake", str(train_lake), "train", "--runs-dir", str(tmp_path / "runs")],
    )
    assert r.exit_code == 1, r.output
    assert f"{config}, line 2: key 'train.windw': unknown setting" in r.output, r.output
    assert _train_runs(train_lake) == before and not (tmp_path / "runs").exists()


# --- the flags of `train` ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (
            ["--symbols", "NOPE"],
            1,
            ["symbol(s) NOPE (from the command line): no 1m bars in the lake", "BTCUSDT, ETHUSDT, SOLUSDT"],
        ),
        (
            ["--symbols", "BTCUSDT,NOPE"],
            1,
            ["symbol(s) NOPE (from the command line): no 1m bars in the lake"],
        ),
        (  # a symbol in lower case: the one the lake holds is named
            ["--symbols", "ethusdt"],
            1,
            ["symbol(s) ethusdt (from the command line): no 1m bars", "symbols are upper case: ETHUSDT?"],
        ),
        (  # refused as the file's list is (it was made one symbol silently)
            ["--symbols", "BTCUSDT,BTCUSDT"],
            2,
            ["--symbols", "BTCUSDT given twice in 'BTCUSDT,BTCUSDT': list each symbol once"],
        ),
        (["--set", "symbols=BTCUSDT,BTCUSDT"], 2, ["--set", "key 'symbols': BTCUSDT given twice"]),
        (  # known before the run: 2 episodes of 10 steps are 20 samples (it was cut to 20 silently)
            ["--set", "episode_length=10", "--set", "episodes_per_iteration=2", "--set", "batch_size=21"],
            1,
            [
                "the command line (batch_size, episodes_per_iteration, episode_length): key 'batch_size': 21 "
                "is more than an iteration's rollout holds (20 samples: 2 episodes of 10 steps), so each "
                "minibatch would be the whole rollout: set batch_size to at most 20, or raise "
                "episodes_per_iteration or episode_length"
            ],
        ),
        (  # as --set symbols= is (it trained on every eligible symbol)
            ["--symbols", ""],
            2,
            [
                "--symbols",
                "expected a non-empty list of symbols, got ''",
                "--symbols all: every eligible symbol",
            ],
        ),
        (["--symbols", " , "], 2, ["--symbols", "expected a non-empty list of symbols"]),
        (
            ["--set", "symbols=[]"],
            2,
            [
                "--set",
                "key 'symbols': expected a non-empty list of symbols",
                "symbols=all: every eligible symbol",
            ],
        ),
        (["--set", "symbols="], 2, ["--set", "key 'symbols': expected a non-empty list of symbols"]),
        (["--interval", "5m"], 1, ["interval 5m:", "has no 5m bars", "1m: BTCUSDT"]),
        (["--interval", "1x"], 2, ["--interval", "must be one of 1m, 5m, 15m, 1h, 1d, got '1x'"]),
        (["--iterations", "0"], 2, ["--iterations", "must be at least 1, got 0"]),
        (["--seed", "-1"], 2, ["--seed", "must be at least 0"]),
        (["--device", "gpu"], 2, ["--device", "must be one of auto, cpu, cuda, cuda:N, got 'gpu'"]),
        (["--set", "windw=20"], 2, ["--set", "key 'windw': unknown setting"]),
        (["--set", "commission=0.1%"], 2, ["--set", "key 'commission': expected a number, got '0.1%'"]),
        (["--set", "window"], 2, ["--set", "expected KEY=VALUE"]),
        (  # the last one silently won
            ["--set", "window=8", "--set", "window=9"],
            2,
            ["--set", "key 'window' given twice (8 and 9): give it once"],
        ),
        (  # it said "unknown setting"
            ["--set", "min_bars_per_symbol=10"],
            2,
            [
                "--set",
                "key 'min_bars_per_symbol': min_bars_per_symbol is a [data] setting, not a [train] one: set it "
                "in the config file's [data] table (--set takes [train] keys only)",
            ],
        ),
        (["--iterations", "3", "--set", "num_iterations=4"], 2, ["--iterations and --set num_iterations"]),
        (  # the run went to --runs-dir, the --set silently ignored
            ["--set", "runs_dir=elsewhere"],
            2,
            ["--runs-dir and --set runs_dir=... both given: give one"],
        ),
        (
            ["--set", "seed=18446744073709551616"],
            2,
            ["--set", "key 'seed': must be at most 18446744073709551615"],
        ),
        (["--seed", "18446744073709551616"], 2, ["--seed", "must be at most 18446744073709551615"]),
        (
            ["--set", "learning_rate=1e308"],
            2,
            ["--set", "key 'learning_rate': must be at most 1, got 1e+308"],
        ),
        (
            ["--set", f"torch_threads={CPU_COUNT + 1}"],
            1,  # refused when the run would start (the file's value serves other commands on other machines)
            [f"torch_threads': must be at most {CPU_COUNT} (this machine's CPU count)"],
        ),
        (
            ["--interval", "1d", "--set", "hold_overnight=false"],
            1,
            [
                "the command line (hold_overnight, interval): hold_overnight = false with interval 1d",
                "intraday",
            ],
        ),
    ],
)
def test_a_bad_flag_is_refused_and_records_no_run(
    runner: CliRunner,
    train_lake: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    code: int,
    says: list[str],
) -> None:
    _no_store_refresh(monkeypatch)
    (tmp_path / "marketlake.toml").write_text("[train]\nnum_iterations = 2\n", encoding="utf-8")
    before = _train_runs(train_lake)
    r = runner.invoke(cli, ["--lake", str(train_lake), "train", "--runs-dir", str(tmp_path / "runs"), *args])
    assert r.exit_code == code, r.output
    for text in says:
        assert text in r.output, r.output
    errors = "\n".join(line for line in r.output.splitlines() if not line.startswith("settings: "))
    assert "Traceback" not in r.output and "marketlake.toml" not in errors, r.output
    assert _train_runs(train_lake) == before, "a refused command recorded a run"
    assert not (tmp_path / "runs").exists()


def test_set_reaches_the_runs_settings(runner: CliRunner, train_lake: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    r = runner.invoke(
        cli,
        [
            "--lake",
            str(train_lake),
            "--quiet",
            "train",
            "--symbols",
            "BTCUSDT",
            "--runs-dir",
            str(runs),
            "--no-evaluate",
            *tiny_sets(window=20),
            "--set",
            "commission=0.0005",
            "--set",
            "slippage=range",
        ],
    )
    assert r.exit_code == 0, r.output
    (run_dir,) = runs.iterdir()
    saved = json.loads((run_dir / "settings.json").read_text(encoding="utf-8"))
    assert saved["env"]["window"] == 20 and saved["env"]["commission"] == 0.0005, saved["env"]
    assert saved["env"]["slippage"] == "range" and saved["ppo"]["hidden_sizes"] == [16, 16], saved
    assert saved["overrides"]["window"] == 20 and saved["symbols"] == ["BTCUSDT"], saved


def test_a_run_that_fails_after_it_started_is_still_recorded(
    runner: CliRunner, train_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: PPO) -> None:
        raise RuntimeError("the learner broke")

    monkeypatch.setattr(PPO, "iterate", boom)
    before = {r["run_id"] for r in _train_runs(train_lake)}
    r = runner.invoke(
        cli, ["--lake", str(train_lake), "train", "--runs-dir", str(tmp_path / "runs"), *TINY_SETS]
    )
    assert r.exit_code != 0, r.output
    new = [row for row in _train_runs(train_lake) if row["run_id"] not in before]
    assert [row["status"] for row in new] == ["failed"], new
    assert "the learner broke" in new[0]["metrics"]["error"]


def test_the_run_id_is_printed_once_and_last(runner: CliRunner, train_lake: Path, tmp_path: Path) -> None:
    r = runner.invoke(
        cli,
        [
            "--lake",
            str(train_lake),
            "train",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--no-evaluate",
            *TINY_SETS,
        ],
    )
    assert r.exit_code == 0, r.output
    assert r.output.count("run id:") == 1, r.output
    assert r.output.rstrip().splitlines()[-1].startswith("run id: "), r.output


# --- what would lose a whole run at its end -----------------------------------------------------------------


def test_a_test_period_without_bars_is_refused_before_training(
    runner: CliRunner, train_lake: Path, tmp_path: Path
) -> None:
    """Date splits set beyond the data: every bar trains and the test period is empty; a run to be evaluated
    is refused before any work (no folder, no row), with what to change; --no-evaluate still trains."""
    config = tmp_path / "late.toml"
    config.write_text('[splits]\nmethod = "date"\ntrain_end = 2030-01-01\nvalidation_end = 2031-01-01\n')
    runs = tmp_path / "runs"
    before = len(_train_runs(train_lake))
    args = ["--lake", str(train_lake), "--config", str(config), "train", "--runs-dir", str(runs), *TINY_SETS]
    r = runner.invoke(cli, args)
    assert r.exit_code == 1, r.output
    assert "the test period" in r.output and "holds no 1m bar" in r.output and "--no-evaluate" in r.output, (
        r.output
    )
    assert not runs.exists() and len(_train_runs(train_lake)) == before


def test_an_unwritable_runs_folder_is_refused_before_training(
    runner: CliRunner, train_lake: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    before = len(_train_runs(train_lake))
    args = ["--lake", str(train_lake), "train", "--runs-dir", str(blocker / "runs"), *TINY_SETS]
    r = runner.invoke(cli, args)
    assert r.exit_code == 1 and f"cannot write to {blocker / 'runs'}" in r.output, r.output
    assert len(_train_runs(train_lake)) == before


def test_a_read_only_lake_is_refused_before_training(
    runner: CliRunner, train_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only mount (EROFS; this test runs as any user, so the file system's answer is given)."""
    import errno
    import tempfile

    real = tempfile.TemporaryFile

    def temporary_file(*args: Any, **kw: Any) -> Any:
        if Path(kw.get("dir", "")) == train_lake:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, **kw)

    monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)
    runs = tmp_path / "runs"
    r = runner.invoke(cli, ["--lake", str(train_lake), "train", "--runs-dir", str(runs), *TINY_SETS])
    assert r.exit_code == 1 and f"cannot write to {train_lake}: Read-only file system" in r.output, r.output
    assert not runs.exists()


# --- bounds the file and --set share with rl/, and combinations --------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("seed", 2**64), ("learning_rate", 1e308), ("learning_rate", 1.5)],
)
def test_what_the_train_rules_refuse_rl_refuses_too(key: str, value: Any) -> None:
    """A value above a bound is refused by the file's check and by rl/ppo.py's (a Settings built in code)."""
    from lake.config import Settings
    from lake.errors import ConfigError
    from rl.train import read_train_settings

    with pytest.raises(ValueError, match="must be at most"):
        check_train_value(key, value)
    with pytest.raises(ConfigError, match=f"key '{key}': must be at most"):
        read_train_settings(Settings(train={key: value}))


def test_the_largest_seed_trains_and_evaluates(runner: CliRunner, train_lake: Path, tmp_path: Path) -> None:
    """2**64 - 1: what torch.manual_seed takes (and numpy's generators, the random baseline, the bootstrap)."""
    top = 2**64 - 1
    check_train_value("seed", top)
    r = runner.invoke(
        cli,
        [
            "--lake",
            str(train_lake),
            "--quiet",
            "train",
            "--runs-dir",
            str(tmp_path / "runs"),
            *TINY_SETS,
            "--seed",
            str(top),
            "--symbols",
            "BTCUSDT",
        ],
    )
    assert r.exit_code == 0, r.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "settings.json").read_text(encoding="utf-8"))["ppo"]["seed"] == top
    assert json.loads((run_dir / "evaluation-test.json").read_text(encoding="utf-8"))["seed"] == top


def test_hold_overnight_false_on_daily_bars_is_refused_naming_the_file(
    runner: CliRunner, train_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every daily bar is its session's last: `hold_overnight = false` would close every position the bar it
    opens (buy-and-hold made 1,838 trades and -67% instead of +52.7% on the demo's stocks)."""
    _no_store_refresh(monkeypatch)
    config = tmp_path / "mine.toml"
    config.write_text('[train]\ninterval = "1d"\nhold_overnight = false\n', encoding="utf-8")
    before = _train_runs(train_lake)
    args = ["--config", str(config), "--lake", str(train_lake), "train", "--runs-dir", str(tmp_path / "runs")]
    r = runner.invoke(cli, args)
    assert r.exit_code == 1, r.output
    assert f"error: {config} [train]: hold_overnight = false with interval 1d" in r.output, r.output
    assert "needs intraday bars (1m, 5m, 15m or 1h)" in r.output, r.output
    said = [line for line in r.output.strip().splitlines() if not line.startswith("settings: ")]
    assert len(said) == 1 and "Traceback" not in r.output, r.output  # one line (after the settings file's)
    assert _train_runs(train_lake) == before and not (tmp_path / "runs").exists()
    # intraday bars may close at the session's end
    monkeypatch.undo()  # (the store may be refreshed now)
    r = runner.invoke(cli, [*args, "--interval", "1m", "--no-evaluate", "--quiet", *TINY_SETS])
    assert r.exit_code == 0, r.output


def test_an_evaluation_no_model_can_be_scored_on_is_refused_before_training_and_not_recorded(
    runner: CliRunner, train_lake: Path, tmp_path: Path
) -> None:
    """A window longer than every segment of the test period (414 bars each here, after the warm-up): no bar
    can be decided on, so a run to be evaluated is refused before any work (no folder, no row), naming the
    longest segment and the window to lower; it trained in full, and only then failed. --no-evaluate trains,
    warning that `evaluate` will have nothing to score; and `marketlake evaluate RUN_ID` refuses, recording
    nothing."""
    runs = tmp_path / "runs"
    before = len(_train_runs(train_lake))
    args = ["--lake", str(train_lake), "train", "--runs-dir", str(runs), "--symbols", "BTCUSDT"]
    r = runner.invoke(cli, [*args, *tiny_sets(window=420)])
    assert r.exit_code == 1, r.output
    assert (
        "error: window 420: no test-period segment of BTCUSDT is longer than the window (the longest after the "
        "features' warm-up, in 1m bars: BTCUSDT 414; "
    ) in r.output, r.output
    assert "lower train.window (--set window=413 or lower)" in r.output and "--no-evaluate" in r.output
    assert "Traceback" not in r.output, r.output
    assert not runs.exists() and len(_train_runs(train_lake)) == before

    r = runner.invoke(cli, [*args, "--no-evaluate", *tiny_sets(window=420)])
    assert r.exit_code == 0, r.output
    assert "window 420: no test-period segment of BTCUSDT is longer than the window" in r.stderr, r.stderr
    assert "`marketlake evaluate` will have nothing to score this run on" in r.stderr, r.stderr
    (run_dir,) = runs.iterdir()
    refusal = (
        "test period: none of its 414 1m bars has 420 rows of history in its segment and a next bar to "
        "fill at, so no model can be scored on it: no evaluation was run or recorded (the run's window is 420"
    )
    r = runner.invoke(cli, ["--lake", str(train_lake), "evaluate", run_dir.name])
    assert r.exit_code == 1 and r.output.startswith(f"error: {refusal}"), r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    evaluations = [
        row for row in runlog.list_runs(train_lake, kind="evaluate") if row["run_dir"] == str(run_dir)
    ]
    assert evaluations == [], evaluations


def test_a_window_some_symbols_test_segments_allow_is_not_refused(train_lake: Path) -> None:
    """The check refuses only when no training symbol can be scored: the others are named."""
    from lake.config import Settings
    from rl.train import test_window_problem

    assert test_window_problem(train_lake, Settings(), "1m", ["BTCUSDT", "ETHUSDT"], 413) == (None, [])
    problem, short = test_window_problem(train_lake, Settings(), "1m", ["BTCUSDT"], 414)
    assert problem is not None and short == ["BTCUSDT"]


def test_more_torch_threads_than_cpus_is_refused_by_train_not_by_other_commands(
    runner: CliRunner, train_lake: Path, tmp_path: Path
) -> None:
    """A marketlake.toml written on a larger machine still serves `check` here; `train` refuses it before any
    work (more threads than CPUs wait on each other: hundreds of times slower)."""
    config = tmp_path / "big-machine.toml"
    config.write_text(f"[train]\ntorch_threads = {CPU_COUNT + 1}\n")
    r = runner.invoke(cli, ["--lake", str(train_lake), "--config", str(config), "check"])
    assert r.exit_code == 0, r.output
    runs = tmp_path / "runs"
    r = runner.invoke(
        cli, ["--lake", str(train_lake), "--config", str(config), "train", "--runs-dir", str(runs)]
    )
    assert r.exit_code == 1 and f"must be at most {CPU_COUNT}" in r.output, r.output
    assert not runs.exists()


def test_a_symbol_given_twice_in_code_is_refused_before_any_work() -> None:
    """A Settings built in code (no file) is checked by rl/ as the file is (it failed after the feature
    refresh, as a `failed` run: `symbols given twice`, naming no key)."""
    from lake.config import Settings
    from lake.errors import ConfigError
    from rl.train import read_train_settings

    with pytest.raises(ConfigError, match=r"key 'symbols': SPY given twice: list each symbol once"):
        read_train_settings(Settings(train={"symbols": ["SPY", "SPY"]}))


def test_train_refuses_a_symbol_given_twice_in_the_file_before_any_work(
    runner: CliRunner, train_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_store_refresh(monkeypatch)
    config = tmp_path / "mine.toml"
    config.write_text('[train]\nsymbols = ["BTCUSDT", "BTCUSDT"]\n', encoding="utf-8")
    before = _train_runs(train_lake)
    r = runner.invoke(
        cli,
        ["--config", str(config), "--lake", str(train_lake), "train", "--runs-dir", str(tmp_path / "runs")],
    )
    assert r.exit_code == 1, r.output
    assert f"{config}, line 2: key 'train.symbols': BTCUSDT given twice" in r.output, r.output
    assert _train_runs(train_lake) == before and not (tmp_path / "runs").exists()


def test_a_batch_size_above_the_rollout_in_the_file_is_refused_before_any_work() -> None:
    from lake.config import Settings
    from lake.errors import ConfigError
    from rl.train import read_train_settings

    table = {"episode_length": 10, "episodes_per_iteration": 3, "num_envs": 2, "batch_size": 41}
    with pytest.raises(
        ConfigError,
        match=r"^cfg\.toml \[train\]: key 'batch_size': 41 is more than an .*"
        r"\(40 samples: 3 episodes of 10 steps over 2 envs\)",
    ):
        read_train_settings(Settings(train=table, path=Path("cfg.toml")))
    read_train_settings(Settings(train={**table, "batch_size": 40}))  # 2 envs x 2 episodes x 10 steps


def test_a_batch_size_refusal_names_the_line_of_each_key_of_the_file_and_those_of_the_command_line(
    runner: CliRunner, train_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said `cfg.toml [train]: ...` (no line) for the file's keys, and only `the command line (...)` when
    both gave some."""
    from lake.config import load_settings
    from lake.errors import ConfigError
    from rl.train import read_train_settings

    config = tmp_path / "mix.toml"
    config.write_text(
        "[train]\nseed = 1\nepisode_length = 10\nbatch_size = 300\nepisodes_per_iteration = 3\n"
    )
    settings = load_settings(config)
    rollout = "is more than an iteration's rollout holds"
    with pytest.raises(ConfigError) as info:
        read_train_settings(settings)
    assert str(info.value).startswith(
        f"{config}, line 3 (episode_length), line 4 (batch_size), line 5 (episodes_per_iteration): key "
        f"'batch_size': 300 {rollout} (30 samples: 3 episodes of 10 steps)"
    ), info.value
    _no_store_refresh(monkeypatch)
    args = ["--config", str(config), "--lake", str(train_lake), "train", "--runs-dir", str(tmp_path / "runs")]
    r = runner.invoke(cli, [*args, "--set", "episodes_per_iteration=20"])
    assert r.exit_code == 1, r.output
    said = [line for line in r.output.strip().splitlines() if not line.startswith("settings: ")]
    assert said[0].startswith(
        f"error: {config}, line 3 (episode_length), line 4 (batch_size) and the command line "
        f"(episodes_per_iteration): key 'batch_size': 300 {rollout} (200 samples: 20 episodes of 10 steps)"
    ), r.output
    assert len(said) == 1 and not (tmp_path / "runs").exists(), r.output  # (after the settings file's line)


def test_the_config_file_is_recorded_by_its_absolute_path_as_the_lake_is(
    runner: CliRunner, train_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--config demo.toml` was recorded as "demo.toml" beside an absolute lake: which file, from where?"""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.toml").write_text(
        "[train]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY.items())
    )
    args = ["--lake", str(train_lake), "--config", "mine.toml", "-q", "train", "--no-evaluate"]
    r = runner.invoke(cli, [*args, "--iterations", "1", "--runs-dir", "runs"])
    assert r.exit_code == 0, r.output
    (run_dir,) = (tmp_path / "runs").iterdir()  # (a relative runs folder is the working folder's)
    saved = json.loads((run_dir / "settings.json").read_text(encoding="utf-8"))
    assert saved["config_file"] == str(tmp_path / "mine.toml") and saved["lake"] == str(train_lake), saved
    (row,) = [row for row in _train_runs(train_lake) if row["run_id"] == run_dir.name]
    assert row["config"]["config_file"] == str(tmp_path / "mine.toml"), row["config"]
