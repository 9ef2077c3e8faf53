"""What a command runs with: the lake's root, the settings, and how loud to be.

Layer-neutral: the ingestors, the feature store and the command line all take a RunContext, so it lives
in the storage layer, which imports nothing above it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from lake.config import Settings
from lake.paths import LakePaths


@dataclass
class RunContext:
    """What a command runs with: the lake, the settings, and how loud to be."""

    root: Path
    settings: Settings
    quiet: bool = False
    console: Console = field(default_factory=lambda: Console(stderr=True))

    @property
    def paths(self) -> LakePaths:
        return LakePaths(self.root)

    def say(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, highlight=False)
