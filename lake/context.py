"""What a command runs with: the lake's root, the settings, and how loud to be.

Layer-neutral: the ingestors, the feature store and the command line all take a RunContext, so it lives
in the storage layer, which imports nothing above it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.text import Text

from lake.config import Settings
from lake.paths import LakePaths

LOG_WIDTH = 200
"""Columns of a command's output when it goes to a file or a pipe (rich would cut it at 80: paths split in
two, a progress line cut short); a terminal keeps its own width, and COLUMNS decides when set."""


def plain(value: object) -> Text:
    """`value` as text that rich prints as it is: a `str` handed to rich is read as markup, so a value
    holding brackets ("[splits]", a headline "[video] ...", "[/]") lost them or raised a markup error."""
    return Text(str(value))


def stderr_console() -> Console:
    """A console on stderr: a terminal's width, or LOG_WIDTH columns for a file or a pipe."""
    console = Console(stderr=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=True, width=LOG_WIDTH)
    return console


@dataclass
class RunContext:
    """What a command runs with: the lake, the settings, and how loud to be."""

    root: Path
    settings: Settings
    quiet: bool = False
    console: Console = field(default_factory=stderr_console)

    @property
    def paths(self) -> LakePaths:
        return LakePaths(self.root)

    def say(self, message: str) -> None:
        if not self.quiet:
            self.console.print(
                message, markup=False, highlight=False, soft_wrap=True
            )  # a line as long as it is
