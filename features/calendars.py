"""Exchange calendars: XNYS sessions from exchange_calendars, materialised in the lake."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lake.writer import LakeWriter


def ensure_sessions(writer: LakeWriter) -> None:
    """Make the trading_sessions dataset cover every day from the earliest to the latest bar in the lake.

    Called by the lake writer before it releases its lock. (To be built by the feature-store issue.)
    """
    return None
