"""Importing the lake leaves a user's warnings as they are, but for duckdb's own deprecation noise."""

from __future__ import annotations

import subprocess
import sys

_DF_OF_A_TIMESTAMP = (
    "import duckdb{lake}; "
    "duckdb.connect().sql(\"SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00' AS ts\").df(); "
    "import warnings; warnings.warn('a warning of the caller', UserWarning)"
)


def _stderr(code: str) -> str:
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stderr


def test_a_df_of_a_lake_view_prints_no_pandas_deprecation_of_duckdbs_code() -> None:
    """duckdb's .df() of a TIMESTAMPTZ column makes pandas (3.1 and later) warn about duckdb's own call,
    twice per query; with the lake imported that one warning is gone and a caller's own still shows."""
    with_lake = _stderr(_DF_OF_A_TIMESTAMP.format(lake=", lake"))
    assert "inplace keyword" not in with_lake, with_lake
    assert "a warning of the caller" in with_lake
    import pandas

    if tuple(int(x) for x in pandas.__version__.split(".")[:2]) >= (3, 1):  # the noise is there without it
        assert "inplace keyword" in _stderr(_DF_OF_A_TIMESTAMP.format(lake=""))
