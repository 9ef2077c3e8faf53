"""A numpy vector env: N episodes stepped at once as array operations (no Python loop over envs), with
auto-reset. The fill and cost rules are rl/market.py's, as in the single env (rl/env.py).

A `gymnasium.vector.VectorEnv` (metadata["autoreset_mode"]: AutoresetMode.SAME_STEP, or NEXT_STEP when made with
autoreset_mode=AutoresetMode.NEXT_STEP, as Gymnasium's SyncVectorEnv), built from the lake by
`gymnasium.make_vec("marketlake/Trading-v0", num_envs=N, lake=..., ...)` (the registered vector entry point,
`make_vec_env`: the period is read once and shared by the N episodes) or from ready arrays by
`VecTradingEnv(data, config, num_envs, seed)`.

Rewards: float64 [N], each the single env's reward for the same step exactly (as Gymnasium's own vector
envs, which return float64 rewards). Observation (float32): the last `window` normalised feature rows up to the decision bar, flattened, then the
position held now (-1, 0, 1) and 1.0 when the decision bar ends at or after its session's close by the
calendar (stocks; known at the bar, never read from later rows), else 0.0.

Auto-reset, Gymnasium's "same step" (the default): in the step where an episode ends, the returned obs is the NEW
episode's first obs; the ended episode's last obs is in info["final_obs"] (a float32 [N, obs_dim] array: its
rows where info["_final_obs"] is True), its return and length in info["final_info"] ("episode_return",
"episode_length", with the masks "_episode_return", "_episode_length"; info["_final_info"] the same mask as
"_final_obs") and, for every env, in info["episode_return"] (NaN where no episode ended) and
info["episode_length"] (0 there). The returned obs array
is a new array at every step() and reset() (copy=True, the default, as Gymnasium's SyncVectorEnv): a loop may
keep (obs, next_obs). With copy=False it is the env's own buffer, overwritten by the next step() or reset()
(no copy of N x obs_dim floats a step: what the PPO learner uses, rl/train.py); copy it to keep it. An episode ends
truncated after `episode_length` steps, or terminated at the step that ruins its account (its equity wiped out
and floored, rl/market.py; as the single env: never both), and auto-resets either way. With NEXT_STEP (what
gymnasium's NormalizeObservation and other vector wrappers need): the step where an episode ends returns its
last obs (no final_obs; episode_return and episode_length as above), and the next step resets that env,
ignoring its action: reward 0, cost 0, terminated and truncated False, obs the new episode's first. `terminated` of a step
where no account was ruined, `truncated` of a step before any episode could reach its length, and the info
arrays of a step where no episode ended are read-only (shared constants: copy them to change them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from lake.errors import ConfigError
from rl.episodes import CLIP, MarketData
from rl.market import EnvConfig, Market, episode_length, episode_notes, valid_starts, window_view

if TYPE_CHECKING:
    from lake.config import Settings
    from rl.episodes import NormStats

EXTRA = 2  # position, session-end flag


def observation_space(data: MarketData, config: EnvConfig) -> gymnasium.spaces.Box:
    dim = config.window * data.features.shape[1] + EXTRA
    return gymnasium.spaces.Box(low=-CLIP, high=CLIP, shape=(dim,), dtype=np.float32)


class ObsBuilder:
    """Writes observations for rows into a preallocated buffer (np.take of the strided window view)."""

    def __init__(self, data: MarketData, config: EnvConfig, batch: int) -> None:
        self.window = config.window
        self.windows = window_view(data.features, config.window)
        self.wf = config.window * data.features.shape[1]
        flag = data.at_close if data.at_close is not None else data.session_end
        self.session_end = flag.astype(np.float32)  # the calendar's "at the close", known at the bar
        self.buf = np.zeros((batch, self.wf + EXTRA), dtype=np.float32)
        self.win_part = self.buf[:, : self.wf]

    def build(self, rows: np.ndarray, position: np.ndarray) -> np.ndarray:
        # fancy indexing of the strided view gathers only the wanted windows (np.take would first copy the
        # whole view into a contiguous array)
        self.win_part[...] = self.windows[rows - (self.window - 1)]
        self.buf[:, self.wf] = position
        self.buf[:, self.wf + 1] = self.session_end[rows]
        return self.buf

    def one(self, row: int, position: float) -> np.ndarray:
        out = np.empty(self.wf + EXTRA, dtype=np.float32)
        out[: self.wf] = self.windows[row - (self.window - 1)]
        out[self.wf] = position
        out[self.wf + 1] = self.session_end[row]
        return out


class VecTradingEnv(VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """N episodes of one MarketData at once: a Gymnasium VectorEnv that autoresets in the same step
    (autoreset_mode=AutoresetMode.SAME_STEP, the default) or in the next (NEXT_STEP: see the module).

    From the lake: `make_vec_env` (what `gymnasium.make_vec("marketlake/Trading-v0", num_envs=N, ...)` calls);
    from arrays already read (`rl.episodes.load_period`): `VecTradingEnv(data, config, num_envs, seed)`.
    reset(seed=s) seeds the starts' generator (numpy's default_rng(s)); options={"starts": rows} starts the
    episodes at those rows. copy=True (the default): step() and reset() return a new observation array each
    time; copy=False: the env's own buffer, overwritten by the next step() or reset() (copy it to keep it).
    info["final_obs"] is a copy either way."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
    single_observation_space: gymnasium.spaces.Box
    single_action_space: gymnasium.spaces.Discrete
    observation_space: gymnasium.spaces.Box
    action_space: gymnasium.spaces.MultiDiscrete

    def __init__(
        self,
        data: MarketData,
        config: EnvConfig,
        num_envs: int,
        seed: int | None = None,
        *,
        copy: bool = True,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
    ) -> None:
        if num_envs < 1:
            raise ConfigError(f"num_envs must be at least 1, got {num_envs}")
        self.copy = copy
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self._next_step = self.autoreset_mode == AutoresetMode.NEXT_STEP
        self._pending: np.ndarray | None = None  # NEXT_STEP: the envs whose episode ended in the last step
        self.data = data
        self.config = config
        self.num_envs = num_envs
        self.market = Market(data, config)
        self.episode_length = episode_length(data, config)
        self.starts = valid_starts(data, config)
        if len(self.starts) == 0:
            raise ConfigError(f"no episode start in the {data.period} period of {', '.join(data.symbols)}")
        self.single_observation_space = observation_space(data, config)
        self.single_action_space = gymnasium.spaces.Discrete(config.n_actions)
        self.observation_space = gymnasium.spaces.Box(
            low=-CLIP, high=CLIP, shape=(num_envs, self.single_observation_space.shape[0]), dtype=np.float32
        )
        self.action_space = gymnasium.spaces.MultiDiscrete(np.full(num_envs, config.n_actions))
        self._obs = ObsBuilder(data, config, num_envs)
        self._pos_table = np.array([0.0, 1.0, -1.0][: config.n_actions])
        self.rng = np.random.default_rng(seed)
        self._np_random, self._np_random_seed = self.rng, seed
        self.row = np.zeros(num_envs, np.int64)
        self.start = np.zeros(num_envs, np.int64)  # each episode's first row (k steps in: row start + k)
        self._k_max = 0  # the most steps any episode is in: no episode ends before it reaches episode_length
        self.pos = np.zeros(num_envs, np.float64)  # the side held: -1, 0, 1
        self.entry = np.ones(num_envs, np.float64)  # its entry price (its weight drifts from there)
        self.ret_sum = np.zeros(num_envs, np.float64)
        # constant arrays handed out in every step where they apply (read-only: nobody can change them)
        self._false = np.zeros(num_envs, dtype=bool)
        self._no_return = np.full(num_envs, np.nan)
        self._no_length = np.zeros(num_envs, np.int64)
        for a in (self._false, self._no_return, self._no_length):
            a.flags.writeable = False

    @property
    def k(self) -> np.ndarray:
        """The steps each episode has taken since its start (a new array)."""
        return self.row - self.start

    @property
    def equity(self) -> np.ndarray:
        """Each environment's equity in its running episode (a new float64 array): 1.0 at the episode's start,
        marked at the last bar's close, net of costs, as the single env's info["equity"] (computed when
        asked, not at every step). After a step that ended an episode (same-step auto-reset) that env's
        entry is its new episode's 1.0; the ended one's is exp(info["episode_return"])."""
        return np.exp(self.ret_sum)

    @property
    def position(self) -> np.ndarray:
        """Each environment's position now, -1, 0 or 1 (a new float64 array), as the single env's
        info["position"]."""
        return self.pos.astype(np.float64)

    @property
    def obs_rows(self) -> np.ndarray:
        """The data row of each environment's current observation: its window is window_features[row -
        window + 1 .. row] (read-only, overwritten by the next step; the learner keeps rows, not windows)."""
        return self.row

    @property
    def window_features(self) -> np.ndarray:
        """The feature rows observation windows are cut from ([n_rows, F] float32, contiguous)."""
        return self.data.features

    @property
    def feature_names(self) -> list[str]:
        """The feature columns of each window row of an observation, in order (rl.FEATURES)."""
        return list(self.data.feature_names)

    @property
    def obs_dim(self) -> int:
        return int(self.single_observation_space.shape[0])

    def sample_starts(self, n: int) -> np.ndarray:
        return self.starts[self.rng.integers(0, len(self.starts), size=n)]

    def _new_starts(self, ended: np.ndarray) -> np.ndarray:
        """The first rows of the episodes that follow the ended ones (`ended`: a mask), in the envs' order."""
        return self.sample_starts(int(ended.sum()))

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """options={"starts": rows} starts the episodes at those rows (each must be a valid start)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            self._np_random, self._np_random_seed = self.rng, seed
        if options and options.get("starts") is not None:
            starts = np.asarray(options["starts"], dtype=np.int64).reshape(self.num_envs)
            if not np.isin(starts, self.starts).all():
                raise ValueError("a requested start is not a valid episode start (valid_starts)")
        else:
            starts = self.sample_starts(self.num_envs)
        self.row[:] = starts
        self.start[:] = starts
        self._k_max = 0
        self._pending = None
        self.pos[:] = 0.0
        self.entry[:] = 1.0
        self.ret_sum[:] = 0.0
        obs = self._obs.build(self.row, self.pos)
        return (obs.copy() if self.copy else obs), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        given = np.asarray(actions)
        if given.dtype.kind not in "iu":  # 1.5 must not become 1 (long), nor True an action
            raise ValueError(
                f"actions must be whole numbers in 0..{len(self._pos_table) - 1} (an integer array), got {given!r}"
            )
        a = given.astype(np.int64, copy=False)
        if a.shape != (self.num_envs,):
            a = a.reshape(self.num_envs)
        if a.view(np.uint64).max() >= len(self._pos_table):  # one pass: a negative action is huge as uint64
            raise ValueError(f"actions must be in 0..{len(self._pos_table) - 1}, got {a}")
        q = self._pos_table[a]
        if self._next_step:
            return self._step_next(q)
        log_ret, cost, _turnover, p_next, entry, ruined = self.market.transition(
            self.row, self.pos, self.entry, q
        )
        self.entry = entry
        self.row += 1
        self._k_max += 1
        self.pos = p_next
        self.ret_sum += log_ret
        # (an episode can end only once the longest-running one reaches its length: the other steps skip
        # the comparison of every episode's count)
        k = self.row - self.start if self._k_max >= self.episode_length else None
        done = k >= self.episode_length if k is not None else self._false
        terminated = self._false
        truncated = done
        # ruin closes the account: terminated there (as in the single env), never truncated
        if ruined is not None:
            terminated = ruined
            truncated = done & ~ruined
            done = done | ruined
        info: dict[str, Any] = {}
        obs = self._obs.build(self.row, self.pos)
        if (k is not None or ruined is not None) and done.any():
            ended = done.copy()
            info["final_obs"] = obs.copy()
            info["_final_obs"] = ended
            info["episode_return"] = np.where(done, self.ret_sum, np.nan)
            info["episode_length"] = np.where(done, self.row - self.start if k is None else k, 0)
            info["final_info"] = {
                "episode_return": info["episode_return"],
                "_episode_return": ended,
                "episode_length": info["episode_length"],
                "_episode_length": ended,
            }
            info["_final_info"] = ended
            self.row[done] = self._new_starts(done)
            self.start[done] = self.row[done]
            self._k_max = int((self.row - self.start).max())
            self.pos[done] = 0.0
            self.entry[done] = 1.0
            self.ret_sum[done] = 0.0
            obs = self._obs.build(self.row, self.pos)
        else:
            info["episode_return"] = self._no_return
            info["episode_length"] = self._no_length
        info["cost"] = cost
        return (obs.copy() if self.copy else obs), log_ret, terminated, truncated, info

    def _step_next(
        self, q: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """A step with Gymnasium's NEXT_STEP autoreset (as its SyncVectorEnv): an env whose episode ended in
        the previous step is reset now, its action ignored: reward 0, cost 0, terminated and truncated False,
        its observation the new episode's first. The step where an episode ends returns its last observation
        (no final_obs), and info["episode_return"] / ["episode_length"] as in the same-step mode."""
        pending = self._pending
        if pending is not None:
            self.row[pending] = self._new_starts(pending)
            self.start[pending] = self.row[pending]
            self.pos[pending] = 0.0
            self.entry[pending] = 1.0
            self.ret_sum[pending] = 0.0
        # every env is stepped (an array operation); the reset envs' step is then undone
        log_ret, cost, _turnover, p_next, entry, ruined = self.market.transition(
            self.row, self.pos, self.entry, q
        )
        self.row += 1
        if pending is not None:
            log_ret = np.where(pending, 0.0, log_ret)
            cost = np.where(pending, 0.0, cost)
            p_next = np.where(pending, 0.0, p_next)
            entry = np.where(pending, 1.0, entry)
            self.row[pending] = self.start[pending]
            if ruined is not None:
                ruined = ruined & ~pending
        self.entry = entry
        self.pos = p_next
        self.ret_sum += log_ret
        k = self.row - self.start
        done = k >= self.episode_length
        terminated = ruined if ruined is not None else np.zeros(self.num_envs, dtype=bool)
        truncated = done & ~terminated
        done |= terminated
        info: dict[str, Any] = {}
        if done.any():
            info["episode_return"] = np.where(done, self.ret_sum, np.nan)
            info["episode_length"] = np.where(done, k, 0)
            self._pending = done
        else:
            info["episode_return"] = self._no_return
            info["episode_length"] = self._no_length
            self._pending = None
        info["cost"] = cost
        obs = self._obs.build(self.row, self.pos)
        return (obs.copy() if self.copy else obs), log_ret, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        pass


def _autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    """AutoresetMode.SAME_STEP or NEXT_STEP, given as the enum, its value ("NextStep") or name ("next_step")."""
    if isinstance(mode, str) and not isinstance(mode, AutoresetMode):
        by_name = {m.name.lower(): m for m in AutoresetMode} | {m.value.lower(): m for m in AutoresetMode}
        mode = by_name.get(mode.lower().replace("-", "_"), mode)
    if mode in (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP):
        return AutoresetMode(mode)
    raise ConfigError(
        f"autoreset_mode must be AutoresetMode.SAME_STEP or AutoresetMode.NEXT_STEP (gymnasium.vector), got {mode!r}"
    )


def make_vec_env(
    num_envs: int = 1,
    lake: str | Path | None = None,
    symbols: list[str] | str | None = None,
    interval: str | None = None,
    period: str = "train",
    *,
    seed: int | None = None,
    settings: Settings | None = None,
    config: EnvConfig | str | Path | None = None,
    norm: NormStats | None = None,
    copy: bool = True,
    autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
    render_mode: str | None = None,
    **settings_keywords: Any,
) -> VecTradingEnv:
    """The vector env of `num_envs` episodes over one period of the lake, from the same keywords as the single
    env (`gymnasium.make("marketlake/Trading-v0", ...)`: lake, symbols, interval, period, settings, norm and
    every [train] trading setting or [data] / [splits] setting by its name; `config` an EnvConfig or a settings
    file's path), its settings and EnvConfig made by the same function (rl.env.env_settings), with the same
    notes and warnings (the settings file used, EvaluationPeriodWarning, SmallDataWarning). The period is read once and its arrays shared by the
    episodes. The vector entry point of `marketlake/Trading-v0`:
    `gymnasium.make_vec("marketlake/Trading-v0", num_envs=N, lake=..., period="train", window=20)`.
    `symbols` and `interval` default to the settings' [train] ones (env_symbols_interval); `copy` and
    `autoreset_mode`: see VecTradingEnv; `render_mode` None only (it renders nothing)."""
    import warnings

    from rl.env import (
        SmallDataWarning,
        _user_level,
        check_render_mode,
        env_settings,
        warn_if_evaluation_period,
    )

    check_render_mode(render_mode)
    base, env_config = env_settings(settings, config, settings_keywords)
    data = read_env_period(lake, base, symbols, interval, period, env_config, norm)
    warn_if_evaluation_period(data.period)
    env = VecTradingEnv(data, env_config, num_envs, seed=seed, copy=copy, autoreset_mode=autoreset_mode)
    for note in episode_notes(data, env_config, env.episode_length, len(env.starts)):
        warnings.warn(note, SmallDataWarning, stacklevel=_user_level())
    return env


ALL_SYMBOLS = "all"
"""[train] symbols = "all" (as `marketlake train` reads it, rl/train.py): every eligible symbol."""


def env_symbols_interval(
    settings: Settings, symbols: list[str] | str | None, interval: str | None
) -> tuple[list[str] | None, str]:
    """The symbols (None: every symbol eligible in the train period) and bar interval an env reads: as given,
    else the settings' [train] `symbols` and `interval` (as `marketlake train` takes them), else every
    eligible symbol and 1m. Symbols may be one string of comma-separated symbols ("SPY,AAPL"); each is
    checked as the settings file's [train] symbols are, and the interval is one of lake.config.TRAIN_INTERVALS:
    a ConfigError saying why otherwise, before anything is read."""
    from lake.config import TRAIN_INTERVALS, check_train_value

    if interval is None:
        interval = settings.train.get("interval") or "1m"
    if interval not in TRAIN_INTERVALS:
        raise ConfigError(f"interval {interval!r} is not a bar interval: one of {', '.join(TRAIN_INTERVALS)}")
    if symbols is None:
        symbols = settings.train.get("symbols")
        if symbols is None or symbols == ALL_SYMBOLS:
            return None, interval
    if isinstance(symbols, str) and symbols.strip() == ALL_SYMBOLS:
        return None, interval
    if not isinstance(symbols, str):
        if isinstance(symbols, tuple):
            symbols = list(symbols)
        if isinstance(symbols, list) and not symbols:
            raise ConfigError(
                "symbols is empty: give at least one symbol, or leave symbols out (None) for every symbol "
                "eligible in the train period"
            )
    try:
        return list(check_train_value("symbols", symbols)), interval
    except ValueError as exc:
        how = (
            " (or one string of comma-separated symbols, 'SPY,AAPL')" if "non-empty list" in str(exc) else ""
        )
        raise ConfigError(f"symbols: {exc}{how}") from None


def read_env_period(
    lake: str | Path | None,
    settings: Settings,
    symbols: list[str] | str | None,
    interval: str | None,
    period: str,
    config: EnvConfig,
    norm: NormStats | None = None,
) -> MarketData:
    """The period's arrays as an env reads them: normalised by `norm`, or for validation and test by the
    train period's statistics (computed by reading train first). Symbols and interval: env_symbols_interval."""
    from rl.episodes import load_period

    symbols, interval = env_symbols_interval(settings, symbols, interval)
    if norm is None and period != "train":
        norm = load_period(lake, settings, symbols, interval, "train", config=config).norm
    return load_period(lake, settings, symbols, interval, period, norm=norm, config=config)
