"""The README and docs/ hold what a user of a fresh clone needs, and link only to files the repository
holds (a clone has no ../shared)."""

from __future__ import annotations

import dataclasses
import importlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lake.config import Settings, SourceConfig
from lake.connect import view_files

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [REPO / "README.md", REPO / "samples" / "README.md", *DOCS]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _tracked() -> set[str] | None:
    """Files git tracks (or None outside a git checkout): a link must point at one of them."""
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        return None
    p = subprocess.run(
        [git, "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True
    )
    return set(p.stdout.splitlines()) if p.returncode == 0 else None


def _local_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [
        t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")
    ]


def test_the_pages_exist() -> None:
    assert {p.name for p in DOCS} >= {"views.md", "time.md", "trading.md", "settings.md", "scaling.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_to_a_file_of_the_repository(page: Path) -> None:
    tracked = _tracked()
    bad = []
    for target in _local_links(page):
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(REPO) or not path.exists():
            bad.append(f"{target}: not a file of the repository")
            continue
        rel = path.relative_to(REPO).as_posix()
        if tracked is not None and not (rel in tracked or any(t.startswith(rel + "/") for t in tracked)):
            bad.append(f"{target}: not committed (a clone would not have it)")
    assert not bad, f"{page.name}: {bad}"
    assert "../shared" not in page.read_text(encoding="utf-8")


def test_the_readme_links_every_doc_and_keeps_its_order() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for doc in DOCS:
        assert f"docs/{doc.name}" in text, doc.name
    heads = [h.strip() for h in re.findall(r"(?m)^## (.*)$", text)]
    wanted = [
        "Two commands",
        "Configuration",
        "Sources",
        "Views",
        "Time",
        "Benchmarks",
        "Guarantees",
        "scale out",
    ]
    at = [next(i for i, h in enumerate(heads) if w in h) for w in wanted]
    assert at == sorted(at), heads
    assert text.index("make demo") < text.index("make test") < text.index("## Configuration")


def test_every_view_is_documented() -> None:
    text = (REPO / "docs" / "views.md").read_text(encoding="utf-8")
    missing = [name for name, _ in view_files() if f"`{name}`" not in text]
    assert not missing, f"docs/views.md does not describe the views {missing}"


def _keys(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_every_setting_is_documented_with_its_default() -> None:
    text = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    toml_name = {"split_method": "method"}
    keys = {toml_name.get(k, k) for k in _keys(Settings)} - {
        "path",
        "train",
        "binance",
        "polygon",
        "yahoo",
        "news",
    }
    for module, cls in (("rl.market", "EnvConfig"), ("rl.ppo", "PPOConfig")):
        try:
            keys |= _keys(getattr(importlib.import_module(module), cls))
        except (ImportError, AttributeError):
            continue  # that part of rl/ is not in this checkout
    missing = sorted(k for k in keys if not re.search(rf"^\| `{k}` \|", text, flags=re.MULTILINE))
    assert not missing, f"docs/settings.md has no row for {missing}"
    assert all(f"`{k}`" in text for k in _keys(SourceConfig))  # symbols, interval of every source
    for section in ("[data]", "[binance]", "[polygon]", "[yahoo]", "[news]", "[splits]", "[train]"):
        assert section in text


def _sql_examples() -> list[tuple[str, str]]:
    """(page, statement) of every ```sql block of the pages a user of the lake reads (not docs/scaling.md,
    whose blocks are for other engines or write files), comment lines left out."""
    out = []
    for page in PAGES:
        if page.name == "scaling.md":
            continue
        for block in re.findall(r"```sql\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.DOTALL):
            text = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("--"))
            out += [(page.name, s.strip()) for s in text.split(";") if s.strip()]
    return out


@pytest.fixture(scope="module")
def empty_lake_connection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import lake

    con = lake.connect(tmp_path_factory.mktemp("docs") / "lake")
    yield con
    con.close()


@pytest.mark.parametrize(("page", "statement"), _sql_examples())
def test_every_sql_example_of_the_docs_binds_against_the_views(
    empty_lake_connection: Any, page: str, statement: str
) -> None:
    """A query a page shows names only views and columns the lake has (planned, on an empty lake: a
    misspelt column fails to bind)."""
    import duckdb

    try:
        empty_lake_connection.execute("EXPLAIN " + statement)
    except duckdb.Error as exc:
        pytest.fail(f"{page}: {statement!r}: {exc}")


def test_the_sql_examples_are_found() -> None:
    """The examples above are read from the pages (a change of fence or layout would leave none to check)."""
    pages = {p for p, _ in _sql_examples()}
    assert {"README.md", "views.md"} <= pages and len(_sql_examples()) >= 15


def _documented_features() -> list[tuple[int, str]]:
    """(index, name) of the rows of docs/trading.md's feature table (after its marker comment)."""
    text = (REPO / "docs" / "trading.md").read_text(encoding="utf-8")
    table = text.split("<!-- features:", 1)[1].split("\n\n", 1)[0]
    return [(int(i), name) for i, name in re.findall(r"(?m)^\| (\d+) \| `([a-z0-9_]+)` \|", table)]


def test_the_documented_observation_features_are_the_envs_in_their_order() -> None:
    import rl
    from rl.episodes import CLIP, FEATURES

    rows = _documented_features()
    assert [i for i, _ in rows] == list(range(len(rows)))
    assert [name for _, name in rows] == list(FEATURES) == list(rl.FEATURES)
    text = (REPO / "docs" / "trading.md").read_text(encoding="utf-8")
    assert f"`F = {len(FEATURES)}`" in text and f"clipped to [-{CLIP:g}, {CLIP:g}]" in text


def test_the_observation_is_as_documented(spy_daily_lake: Path) -> None:
    """docs/trading.md's Observation section on real bars: time-major, oldest row first, then the side held
    and the session flag; each column z-scored with the train period's mean and population std (NULL news
    and market context read as 0, has_* flags beside them), clipped to +-10, float32; Box(-10, 10)."""
    import datetime as dt

    import gymnasium
    import numpy as np

    import lake
    import rl
    from rl.env import TradingEnv
    from rl.episodes import INDICATORS, NULL_AS_ZERO

    w = 7
    env = gymnasium.make(
        rl.ENV_ID, lake=spy_daily_lake, symbols=["SPY"], interval="1d", settings=Settings(), window=w
    ).unwrapped
    assert isinstance(env, TradingEnv)
    d, f = env.data, len(rl.FEATURES)
    assert env.observation_space == gymnasium.spaces.Box(-10.0, 10.0, (w * f + 2,), np.float32)
    assert d.feature_names == list(rl.FEATURES)
    obs, info = env.reset(seed=3)
    t = info["row"]
    assert obs.dtype == np.float32
    for k in range(w):
        assert np.array_equal(obs[k * f : (k + 1) * f], d.features[t - w + 1 + k])
    assert obs[w * f] == 0.0 and obs[w * f + 1] == 1.0  # flat; a daily bar ends at its session's close
    obs, *_ = env.step(1)
    assert obs[w * f] == 1.0

    def instant(us: int) -> dt.datetime:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)

    stored = [c for c in rl.FEATURES if c not in INDICATORS]
    con = lake.connect(spy_daily_lake, read_only=True, settings=Settings())
    try:
        got = con.execute(
            f"SELECT {', '.join(stored)} FROM features WHERE symbol = 'SPY' AND \"interval\" = '1d' "
            "AND NOT warmup AND ts >= ? AND available_at <= ? ORDER BY ts",
            [instant(int(d.bounds[0])), instant(int(d.bounds[1]))],
        ).fetchall()
    finally:
        con.close()
    raw = {c: np.array([r[i] for r in got], dtype=float) for i, c in enumerate(stored)}
    for flag, column in INDICATORS.items():
        raw[flag] = (~np.isnan(raw[column])).astype(float)
    for c in NULL_AS_ZERO:
        raw[c] = np.nan_to_num(raw[c], nan=0.0)
    x = np.column_stack([raw[c] for c in rl.FEATURES])
    mean, std = x.mean(axis=0), x.std(axis=0, ddof=0)
    std = np.where(std > 1e-12, std, 1.0)
    assert np.allclose(d.norm.mean, mean, rtol=1e-9, atol=1e-12)
    assert np.allclose(d.norm.std, std, rtol=1e-9)
    assert np.allclose(d.features, np.clip((x - mean) / std, -10, 10).astype(np.float32), atol=1e-6)


def test_the_docs_say_how_to_count_the_overall_trades_from_the_per_step_file() -> None:
    """The overall trades are the symbols' fills summed (rl.evaluate.portfolio_series), which the per-step
    file's `overall` rows cannot give (they merge fills at one time into one step): every page defining trades
    says so, and how to count them from the file (test_rl_evaluate.py sums the file back to them)."""
    import rl.metrics

    pages = {
        "README.md": (REPO / "README.md").read_text(encoding="utf-8"),
        "docs/trading.md": (REPO / "docs" / "trading.md").read_text(encoding="utf-8"),
        "rl/metrics.py": rl.metrics.__doc__ or "",
    }
    for name, text in pages.items():
        flat = " ".join(text.split())
        assert "summed" in flat and "trades" in flat, name
    for name in ("README.md", "docs/trading.md"):
        flat = " ".join(pages[name].split())
        assert "turnover > 0" in flat and "`overall` rows" in flat and "merge the fills" in flat, name
