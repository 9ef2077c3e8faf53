"""The environment used from someone else's RL code: stable-baselines3's make_vec_env and render_mode, the
vector env's observation arrays kept across steps, the symbols' order, the settings file's [train] symbols
and interval, and the errors of a mistyped symbols or interval. The lake: the real SPY, AAPL and GOOG daily
bars the repository ships (samples/), through `ingest csv`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest

import rl.episodes
from lake.config import Settings
from lake.errors import ConfigError
from rl import ENV_ID
from rl.env import TradingEnv, UnsupportedKeyword
from rl.vector import VecTradingEnv, make_vec_env


@pytest.fixture(scope="module")
def daily_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ingest import samples
    from ingest.common import RunContext

    root = tmp_path_factory.mktemp("daily") / "lake"
    assert all(s.ok for s in samples.run(RunContext(root, Settings(), quiet=True), ["SPY", "AAPL", "GOOG"]))
    return root


@pytest.fixture
def kw(daily_lake: Path) -> dict[str, Any]:
    return {"lake": daily_lake, "interval": "1d", "settings": Settings(), "window": 10, "episode_length": 50}


@pytest.fixture
def reads(periods_read: list[str]) -> list[str]:
    """The periods read from the lake."""
    return periods_read


# --- 1. render_mode, and stable-baselines3's make_vec_env ------------------------------------------------


def test_stable_baselines3s_make_vec_env_builds_the_env_and_steps_it(kw: dict[str, Any]) -> None:
    """SB3 first calls gym.make(id, render_mode="rgb_array", ...) and falls back only on a TypeError; the env
    refused render_mode with a ConfigError (a ValueError), so make_vec_env crashed."""
    env_util = pytest.importorskip("stable_baselines3.common.env_util")
    vec = env_util.make_vec_env(ENV_ID, n_envs=2, seed=0, env_kwargs={"symbols": ["SPY"], **kw})
    obs = vec.reset()
    assert obs.shape == (2, 10 * len(rl.episodes.FEATURES) + 2)
    for _ in range(3):
        obs, rewards, dones, infos = vec.step(np.array([1, 0]))
    assert obs.shape[0] == 2 and rewards.shape == (2,) and infos[0]["position"] == 1.0
    assert infos[1]["position"] == 0.0
    vec.close()


def test_render_mode_none_is_taken_and_any_other_refused_as_a_type_error(
    kw: dict[str, Any], reads: list[str]
) -> None:
    env = gymnasium.make(ENV_ID, render_mode=None, symbols=["SPY"], **kw)
    assert env.unwrapped.render_mode is None
    vec = gymnasium.make_vec(ENV_ID, num_envs=2, render_mode=None, symbols=["SPY"], **kw)
    assert vec.render_mode is None
    reads.clear()
    for make in (
        lambda: gymnasium.make(ENV_ID, render_mode="human", symbols=["SPY"], **kw),
        lambda: TradingEnv(render_mode="rgb_array", symbols=["SPY"], **kw),
        lambda: make_vec_env(2, render_mode="human", symbols=["SPY"], **kw),
    ):
        with pytest.raises(UnsupportedKeyword, match=r"render_mode='(human|rgb_array)': .* renders nothing"):
            make()
    assert issubclass(UnsupportedKeyword, ConfigError) and issubclass(UnsupportedKeyword, TypeError)
    # an unknown keyword is a TypeError too, as Python's own for an unexpected keyword argument
    with pytest.raises(TypeError, match=r"unknown setting\(s\) windw"):
        gymnasium.make(ENV_ID, symbols=["SPY"], windw=3, **kw)
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) windw"):
        make_vec_env(2, symbols=["SPY"], windw=3, **kw)
    assert reads == []  # refused before the lake is read


# --- 2. the vector env's observations may be kept across steps ------------------------------------------


def test_the_vector_envs_observations_are_new_arrays_unless_copy_is_false(kw: dict[str, Any]) -> None:
    """The vector env returned its own buffer from every step: a loop keeping (obs, next_obs) stored s == s'."""
    vec = gymnasium.make_vec(ENV_ID, num_envs=3, symbols=["SPY"], **kw)
    obs, _ = vec.reset(seed=0)
    kept = obs.copy()
    actions = np.array([1, 0, 1])
    next_obs, *_ = vec.step(actions)
    assert next_obs is not obs and np.array_equal(obs, kept)  # the first obs is unchanged by the step
    assert not np.array_equal(obs, next_obs)
    after, *_ = vec.step(actions)
    assert after is not next_obs and not np.shares_memory(after, next_obs)
    # copy=False: the env's own buffer, overwritten by the next step (the learner's zero-copy path)
    data = vec.unwrapped.data  # type: ignore[attr-defined]
    raw = VecTradingEnv(data, vec.unwrapped.config, 3, seed=0, copy=False)  # type: ignore[attr-defined]
    first, _ = raw.reset(seed=0)
    second, *_ = raw.step(actions)
    assert second is first
    # the same trajectory either way
    a = VecTradingEnv(data, raw.config, 3, seed=0)
    b = VecTradingEnv(data, raw.config, 3, seed=0, copy=False)
    oa, _ = a.reset(seed=5)
    ob, _ = b.reset(seed=5)
    assert np.array_equal(oa, ob)
    rng = np.random.default_rng(0)
    for _ in range(120):  # past the episodes' ends: the autoreset's observations too
        act = rng.integers(0, 2, 3)
        sa, sb = a.step(act), b.step(act)
        assert np.array_equal(sa[0], sb[0]) and np.array_equal(sa[1], sb[1])
        if "final_obs" in sa[4]:
            assert np.array_equal(sa[4]["final_obs"], sb[4]["final_obs"])
            assert sb[4]["final_obs"] is not sb[0]


# --- 4. the symbols' order does not change the episodes -------------------------------------------------


def test_the_order_the_symbols_are_given_in_does_not_change_the_episodes(kw: dict[str, Any]) -> None:
    """reset(seed=7) started elsewhere with ["SPY", "AAPL", "GOOG"] than with ["AAPL", "GOOG", "SPY"]: the rows
    were in the order given, so one seed drew another symbol's bar (`marketlake train` sorts them)."""
    one = gymnasium.make(ENV_ID, symbols=["SPY", "AAPL", "GOOG"], **kw)
    two = gymnasium.make(ENV_ID, symbols=["AAPL", "GOOG", "SPY"], **kw)
    for seed in (7, 8, 9):
        o1, i1 = one.reset(seed=seed)
        o2, i2 = two.reset(seed=seed)
        assert i1 == i2 and np.array_equal(o1, o2)
        for a in (1, 1, 0, 1):
            s1, s2 = one.step(a), two.step(a)
            assert np.array_equal(s1[0], s2[0]) and s1[1:] == s2[1:]
    assert one.unwrapped.data.symbols == two.unwrapped.data.symbols == ["AAPL", "GOOG", "SPY"]  # type: ignore[attr-defined]
    v1 = make_vec_env(4, symbols=["SPY", "AAPL", "GOOG"], **kw)
    v2 = make_vec_env(4, symbols=["GOOG", "SPY", "AAPL"], **kw)
    assert np.array_equal(v1.reset(seed=7)[0], v2.reset(seed=7)[0])


# --- 6. the settings file's [train] symbols and interval -------------------------------------------------


def test_the_settings_files_train_interval_and_symbols_are_the_defaults(
    kw: dict[str, Any], tmp_path: Path
) -> None:
    """config="demo.toml" ignored the file's [train] interval (the env read 1m: no 1m bars in the lake)."""
    file = tmp_path / "daily.toml"
    file.write_text('[train]\ninterval = "1d"\nsymbols = ["SPY", "GOOG"]\nwindow = 10\nepisode_length = 50\n')
    lake = kw["lake"]
    env = gymnasium.make(ENV_ID, lake=lake, config=str(file))
    data = env.unwrapped.data  # type: ignore[attr-defined]
    assert (data.interval, data.symbols) == ("1d", ["GOOG", "SPY"])
    vec = gymnasium.make_vec(ENV_ID, num_envs=2, lake=lake, config=str(file))
    assert (vec.unwrapped.data.interval, vec.unwrapped.data.symbols) == ("1d", ["GOOG", "SPY"])  # type: ignore[attr-defined]
    # keywords given win over the file's
    env = gymnasium.make(ENV_ID, lake=lake, config=str(file), symbols=["AAPL"])
    assert env.unwrapped.data.symbols == ["AAPL"]  # type: ignore[attr-defined]
    # symbols = "all" (as `marketlake train` reads it): every eligible symbol
    file.write_text('[train]\ninterval = "1d"\nsymbols = "all"\nwindow = 10\nepisode_length = 50\n')
    env = gymnasium.make(ENV_ID, lake=lake, config=str(file))
    assert env.unwrapped.data.symbols == ["AAPL", "GOOG", "SPY"]  # type: ignore[attr-defined]


# --- 7. a mistyped symbols or interval -----------------------------------------------------------------


def test_symbols_as_one_string_are_comma_separated(kw: dict[str, Any]) -> None:
    """symbols="AAPL" was read as A, A, P, L ("symbol(s) A, A, P, L: no 1d bars in the lake")."""
    env = gymnasium.make(ENV_ID, symbols="AAPL", **kw)
    assert env.unwrapped.data.symbols == ["AAPL"]  # type: ignore[attr-defined]
    vec = make_vec_env(2, symbols="SPY, AAPL", **kw)
    assert vec.data.symbols == ["AAPL", "SPY"]


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"symbols": []}, r"^symbols is empty: give at least one symbol, or leave symbols out \(None\)"),
        (
            {"symbols": ""},
            r"^symbols: expected a non-empty list of symbols, got .* \(or one string of comma-sep",
        ),
        ({"symbols": 3}, r"^symbols: expected a non-empty list of symbols, got 3 \(or one string"),
        (
            {"symbols": ["SPY", "SPY"]},
            r"^symbols: SPY given twice in \[.SPY., .SPY.\]: list each symbol once$",
        ),
        (
            {"symbols": ["SPY"], "interval": "1day"},
            r"^interval '1day' is not a bar interval: one of 1m, 5m, 15m, 1h, 1d$",
        ),
    ],
)
def test_an_empty_symbols_or_a_wrong_interval_is_said_before_any_read(
    kw: dict[str, Any], reads: list[str], keywords: dict[str, Any], message: str
) -> None:
    """symbols=[] said the period "holds no 1d row of  with complete features" (about gaps); interval="1day"
    said "no 1day bars in the lake"."""
    given = {**kw, **keywords}
    with pytest.raises(ConfigError, match=message):
        gymnasium.make(ENV_ID, **given)
    with pytest.raises(ConfigError, match=message):
        make_vec_env(2, **given)
    assert reads == []


# --- 3. NEXT_STEP autoreset, as Gymnasium's SyncVectorEnv and its vector wrappers expect ----------------


class _Scripted(gymnasium.Wrapper[np.ndarray, np.int64, np.ndarray, np.int64]):
    """A single env whose k-th reset starts at script[k] (the vector env below draws the same starts)."""

    def __init__(self, env: TradingEnv, script: list[int]) -> None:
        super().__init__(env)
        self.script = iter(script)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        return self.env.reset(options={"start": next(self.script)})


class _ScriptedVec(VecTradingEnv):
    def __init__(self, *args: Any, scripts: list[list[int]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scripts = [iter(s[1:]) for s in scripts]

    def _new_starts(self, ended: np.ndarray) -> np.ndarray:
        return np.array([next(self.scripts[i]) for i in np.flatnonzero(ended)], np.int64)


@pytest.mark.parametrize("ruinous", [False, True], ids=["SPY daily", "ruinous arrays"])
def test_next_step_autoreset_steps_as_gymnasiums_sync_vector_env(kw: dict[str, Any], ruinous: bool) -> None:
    """The vector env had SAME_STEP autoreset only, where Gymnasium's sync and async modes give NEXT_STEP.
    Compared step for step with SyncVectorEnv over the single env, the same starts and actions: on the real
    SPY bars (episodes end together) and on arrays where short accounts are ruined (they end apart)."""
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    from rl.market import EnvConfig
    from tests.unit.test_env_market import ruinous_data

    if ruinous:
        data = ruinous_data()
        cfg = EnvConfig(window=5, episode_length=60, allow_short=True, slippage="range")
    else:
        data = TradingEnv(symbols=["SPY"], **kw).data
        cfg = EnvConfig(window=10, episode_length=20, commission=0.002, allow_short=True)
    n = 4
    starts = TradingEnv(data=data, config=cfg).starts
    rng = np.random.default_rng(1)
    scripts = [[int(s) for s in rng.choice(starts, 40)] for _ in range(n)]

    def single(script: list[int]) -> Callable[[], gymnasium.Env[np.ndarray, np.int64]]:
        return lambda: _Scripted(TradingEnv(data=data, config=cfg), script)

    sync = SyncVectorEnv([single(s) for s in scripts], autoreset_mode=AutoresetMode.NEXT_STEP)
    vec = _ScriptedVec(data, cfg, n, seed=0, autoreset_mode=AutoresetMode.NEXT_STEP, scripts=scripts)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    so, _ = sync.reset()
    vo, _ = vec.reset(options={"starts": [s[0] for s in scripts]})
    assert np.array_equal(so, vo)
    ends = resets = 0
    apart = False
    for t in range(200):
        actions = rng.choice([0, 1, 2, 2, 2], size=n) if ruinous else rng.integers(0, 3, size=n)
        so, sr, sterm, strunc, sinfo = sync.step(actions)
        vo, vr, vterm, vtrunc, vinfo = vec.step(actions)
        assert np.array_equal(so, vo), t
        assert np.array_equal(sr, vr) and vr.dtype == np.float64, t
        assert np.array_equal(sterm, vterm) and np.array_equal(strunc, vtrunc), t
        # (the envs reset in this step have the reset's info: no cost; none at all when every env reset)
        stepped = sinfo.get("_cost", np.zeros(n, bool))
        if stepped.any():
            assert np.array_equal(sinfo["cost"][stepped], vinfo["cost"][stepped]), t
        assert (vinfo["cost"][~stepped] == 0).all() and (vr[~stepped] == 0).all(), t
        resets += int((~stepped).sum())
        done = sterm | strunc
        if done.any():
            assert "final_obs" not in vinfo
            assert np.array_equal(sinfo["episode_return"][done], vinfo["episode_return"][done]), t
            assert np.array_equal(sinfo["episode_length"][done], vinfo["episode_length"][done]), t
            assert np.isnan(vinfo["episode_return"][~done]).all()
            ends += int(done.sum())
            apart |= not done.all()
    assert ends >= 8 and resets >= 8, (ends, resets)
    assert apart == ruinous  # ruined accounts end apart from the others: the masks are compared too


def test_gymnasiums_normalize_observation_takes_the_next_step_vector_env(kw: dict[str, Any]) -> None:
    """gymnasium.wrappers.vector.NormalizeObservation refuses SAME_STEP: with autoreset_mode=NEXT_STEP,
    from make_vec_env and gymnasium.make_vec, it wraps the vector env."""
    from gymnasium.vector import AutoresetMode
    from gymnasium.wrappers.vector import NormalizeObservation

    with pytest.raises(ValueError, match="NEXT_STEP or DISABLED"):
        NormalizeObservation(make_vec_env(2, symbols=["SPY"], **kw))
    for vec in (
        make_vec_env(2, symbols=["SPY"], autoreset_mode=AutoresetMode.NEXT_STEP, **kw),
        gymnasium.make_vec(ENV_ID, num_envs=2, symbols=["SPY"], autoreset_mode="NextStep", **kw),
    ):
        env = NormalizeObservation(vec)
        env.reset(seed=0)
        for _ in range(60):  # past the episodes' end (50 steps)
            obs, *_ = env.step(np.array([1, 0]))
        assert obs.shape == (2, vec.single_observation_space.shape[0])  # type: ignore[index]
    with pytest.raises(ConfigError, match="autoreset_mode must be AutoresetMode.SAME_STEP or"):
        make_vec_env(2, symbols=["SPY"], autoreset_mode=AutoresetMode.DISABLED, **kw)


def test_evaluate_policy_takes_the_settings_files_train_interval_and_symbols(
    kw: dict[str, Any], tmp_path: Path
) -> None:
    """evaluate_policy's keywords are the env's: its symbols and interval default to the file's [train] ones
    too (it read 1m, as the env did)."""
    import warnings

    import numpy as np

    from rl.evaluate import evaluate_policy

    file = tmp_path / "daily.toml"
    file.write_text('[train]\ninterval = "1d"\nsymbols = ["SPY", "GOOG"]\nwindow = 10\nepisode_length = 50\n')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (no trained_on: said, and beside the point here)
        report = evaluate_policy(
            lambda obs: np.zeros(len(obs), dtype=np.int64), kw["lake"], config=str(file), resamples=400
        )
    assert (report.interval, report.symbols) == ("1d", ["GOOG", "SPY"])
