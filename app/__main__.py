"""`python -m app [--host H] [--port P] [--checkpoints DIR] …`: serve the API with uvicorn.

Command-line flags override the matching `TRM_*` settings. Exactly one uvicorn worker runs: the
engines batch puzzles inside one process, and more workers would split the batches. `main(argv)`
is also what a `trm serve` command calls.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from app.main import create_app
from app.server import build_server
from app.settings import settings_from_flags


def build_parser(prog: str = "python -m app") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve Tiny Recursive Models over HTTP.",
        epilog="Every option also reads its TRM_* environment variable, e.g. TRM_PORT.")
    parser.add_argument("--host", help="interface to bind (TRM_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (TRM_PORT, default 8000)")
    parser.add_argument("--checkpoints", type=Path, dest="checkpoint_dir",
                        help="directory searched for checkpoints (TRM_CHECKPOINT_DIR; default: "
                             "./checkpoints, else the shipped ones)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:1 … (TRM_DEVICE)")
    parser.add_argument("--max-batch-size", type=int, help="engine slots (TRM_MAX_BATCH_SIZE)")
    parser.add_argument("--max-queue-size", type=int, help="queued jobs (TRM_MAX_QUEUE_SIZE)")
    parser.add_argument("--shutdown-timeout", type=float, dest="shutdown_timeout_s",
                        help="drain time on shutdown, seconds (TRM_SHUTDOWN_TIMEOUT_S)")
    parser.add_argument("--log-level", help="debug, info, warning … (TRM_LOG_LEVEL)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m app") -> int:
    """Parse flags, build the settings and serve until SIGINT/SIGTERM (then drain); `prog`
    is the command name help and errors show (`trm serve` calls this too)."""
    settings = settings_from_flags(vars(build_parser(prog).parse_args(argv)))
    app = create_app(settings)
    server = build_server(app, settings, settings.host, settings.port)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
