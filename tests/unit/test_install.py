"""The installed packages are found from any working folder, even one that holds a data folder named like
one of them (`marketlake --lake lake ingest ...` makes ./lake; a notebook started there imports `lake`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGES = ("cli", "features", "ingest", "lake", "rl")


def test_a_data_folder_named_like_a_package_does_not_shadow_it(tmp_path: Path) -> None:
    for name in PACKAGES:
        (tmp_path / name).mkdir()  # a folder without __init__.py: a namespace package if nothing better
    code = "import importlib, sys\n" + "".join(
        f"m = importlib.import_module({name!r}); print({name!r}, getattr(m, '__file__', None))\n"
        for name in PACKAGES
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    root = Path(__file__).resolve().parents[2]
    for line in out.stdout.splitlines():
        name, file = line.split(" ", 1)
        assert file != "None", f"{name} was imported from the data folder {tmp_path / name}: {out.stdout}"
        assert Path(file).resolve() == root / name / "__init__.py", out.stdout
