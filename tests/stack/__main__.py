"""`python -m stack`: start the local stack, print its URLs as one JSON line, run until stopped.

Run from the repository root: `PYTHONPATH=tests:ci/src .venv/bin/python -m stack [--static DIR]`.
PostgreSQL and Redis are servers of its own, or TEST_DATABASE_URL / TEST_REDIS_URL when set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from harness.servers import HarnessError, PostgresServer, RedisServer

from stack.local import LocalStack
from stack.process import StackError

REPO_ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    parser.add_argument(
        "--static", type=Path, help="built front end served at / (a directory with index.html)"
    )
    parser.add_argument("--edge-port", type=int, help="port of the edge router (default: free)")
    parser.add_argument(
        "--only", help="comma-separated service names to start (default: every Python service)"
    )
    parser.add_argument("--ready-timeout", type=float, default=90.0, help="seconds per start")
    args = parser.parse_args(argv)
    if args.static is not None and not (args.static / "index.html").is_file():
        parser.error(f"--static {args.static}: no index.html in that directory")
    if args.edge_port is not None and not 0 < args.edge_port < 65536:
        parser.error(f"--edge-port {args.edge_port}: not a TCP port")
    return args


@contextlib.contextmanager
def backing_services() -> Iterator[tuple[str, str]]:
    """(PostgreSQL admin URL, Redis URL): from the environment, or servers of our own."""
    with contextlib.ExitStack() as stack:
        admin_url = os.environ.get("TEST_DATABASE_URL")
        if not admin_url:
            postgres = PostgresServer().init()
            stack.callback(postgres.destroy)
            postgres.start()
            admin_url = postgres.url()
        redis_url = os.environ.get("TEST_REDIS_URL")
        if not redis_url:
            redis_server = RedisServer()
            stack.callback(redis_server.destroy)
            redis_server.start()
            redis_url = redis_server.url(1)
        yield admin_url, redis_url


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with backing_services() as (admin_url, redis_url):
            stack = LocalStack(
                repo_root=REPO_ROOT,
                postgres_admin_url=admin_url,
                redis_url=redis_url,
                static_dir=args.static,
                only=args.only.split(",") if args.only else None,
                edge_port=args.edge_port,
                ready_timeout=args.ready_timeout,
            )
            with stack as urls:
                print(json.dumps(urls.as_json()), flush=True)
                took = f"{stack.start_seconds:.1f}s {stack.timings}"
                print(f"local stack up in {took}; Ctrl-C stops it", file=sys.stderr, flush=True)
                stop.wait()
    except (StackError, HarnessError) as exc:
        print(f"local stack failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
