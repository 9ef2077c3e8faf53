"""The `marketlake` command line, on top of every layer (lake, ingest, features, rl).

`cli.main` holds the click group and the shared helpers; each module below registers its commands on it.
"""

from cli import demo, ingest, reading, store, training
from cli.main import accept_group_options_everywhere, cli, main

accept_group_options_everywhere(cli)

__all__ = ["cli", "demo", "ingest", "main", "reading", "store", "training"]
