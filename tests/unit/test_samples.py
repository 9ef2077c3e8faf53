"""The shipped sample files are exactly the ones samples/README.md names (source, sha256)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _listed_hashes() -> dict[str, str]:
    text = (SAMPLES / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \|.*\| ([0-9a-f]{64}) \|$", text, flags=re.MULTILINE)
    return dict(rows)


def test_every_sample_file_is_listed_with_its_sha256() -> None:
    listed = _listed_hashes()
    on_disk = {p.name for p in SAMPLES.iterdir() if p.name != "README.md"}
    assert set(listed) == on_disk
    for name, digest in listed.items():
        assert hashlib.sha256((SAMPLES / name).read_bytes()).hexdigest() == digest, name


def test_the_readme_names_the_source_commit_and_the_expected_files() -> None:
    text = (SAMPLES / "README.md").read_text(encoding="utf-8")
    assert "matplotlib/mplfinance" in text
    assert "493811dac9a203de7ec148fb95504e7d3f400ba5" in text
    assert set(_listed_hashes()) >= {
        "LICENSE",
        "SP500_NOV2019_IDay.csv",
        "yahoofinance-SPY-20080101-20180101.csv",
        "yahoofinance-AAPL-20040819-20180120.csv",
        "yahoofinance-GOOG-20040819-20180120.csv",
    }


def test_the_licence_keeps_its_copyright_notice() -> None:
    assert "Copyright (c)" in (SAMPLES / "LICENSE").read_text(encoding="utf-8")
    assert "2012- Matplotlib Development Team" in (SAMPLES / "LICENSE").read_text(encoding="utf-8")
