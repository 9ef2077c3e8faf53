"""`marketlake check`: a data-quality report per symbol from the bar_quality / eligible_symbols views."""

from __future__ import annotations

from typing import Any

from ingest.common import RunContext
from lake.errors import NotBuiltYet


def report(ctx: RunContext) -> list[dict[str, Any]]:
    raise NotBuiltYet("check: not built yet")
