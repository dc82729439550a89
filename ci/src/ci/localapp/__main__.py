"""`python -m ci.localapp`: start the local app, print its URLs as one JSON line, run until
stopped.

Run from the repository root: `PYTHONPATH=ci/src .venv/bin/python -m ci.localapp [--static DIR]`
(or `make run`). PostgreSQL and Redis are servers of its own, or TEST_DATABASE_URL /
TEST_REDIS_URL when set. Progress goes to stderr; exit 1 when a part cannot start or dies.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from ci.localapp.process import StackError
from ci.localapp.servers import HarnessError, PostgresServer, RedisServer
from ci.localapp.services import load_services
from ci.localapp.stack import HOST, REPO_ROOT, LocalStack

WATCH_INTERVAL = 0.5  # seconds between checks that every process still runs


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ci.localapp", description=__doc__)
    parser.add_argument(
        "--static", type=Path, help="built front end served at / (a directory with index.html)"
    )
    parser.add_argument("--edge-port", type=int, help="port of the NGINX edge (default: free)")
    parser.add_argument(
        "--only", help="comma-separated service names to start (default: every Python service)"
    )
    parser.add_argument("--ready-timeout", type=float, default=90.0, help="seconds per start")
    args = parser.parse_args(argv)
    if args.static is not None and not (args.static / "index.html").is_file():
        parser.error(f"--static {args.static}: no index.html in that directory")
    if args.edge_port is not None and not 0 < args.edge_port < 65536:
        parser.error(f"--edge-port {args.edge_port}: not a TCP port")
    if args.only is not None:
        args.only = _known_services(parser, args.only)
    return args


def _known_services(parser: argparse.ArgumentParser, only: str) -> list[str]:
    try:
        known = [service.name for service in load_services(REPO_ROOT)]
    except StackError as exc:
        parser.error(f"cannot read the services: {exc}")
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        parser.error(
            f"--only {only}: unknown service(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(known)}"
        )
    return names


def progress(line: str) -> None:
    print(f"stack: {line}", file=sys.stderr, flush=True)


def ensure_port_free(port: int) -> None:
    """Fail before starting anything when another program listens on the edge's port."""
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise StackError(
                f"--edge-port {port}: {HOST}:{port} is in use ({exc.strerror})"
            ) from exc


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
        if args.edge_port is not None:
            ensure_port_free(args.edge_port)
        progress("starting PostgreSQL and Redis")
        with backing_services() as (admin_url, redis_url):
            stack = LocalStack(
                repo_root=REPO_ROOT,
                postgres_admin_url=admin_url,
                redis_url=redis_url,
                static_dir=args.static,
                only=args.only,
                edge_port=args.edge_port,
                ready_timeout=args.ready_timeout,
                progress=progress,
            )
            with stack as urls:
                print(json.dumps(urls.as_json()), flush=True)
                progress(f"up in {stack.start_seconds:.1f}s {stack.timings}; logs in {urls.logs}")
                progress(f"open {urls.edge}/ in your browser; Ctrl-C stops the stack")
                return run_until_stopped(stack, stop)
    except (StackError, HarnessError) as exc:
        print(f"local stack failed: {exc}", file=sys.stderr)
        return 1


def run_until_stopped(stack: LocalStack, stop: threading.Event) -> int:
    """0 when stopped by a signal; 1 as soon as one of the stack's processes exits."""
    while not stop.wait(WATCH_INTERVAL):
        dead = stack.exited()
        if dead is not None:
            code = dead.popen.returncode if dead.popen else None
            print(
                f"local stack failed: {dead.failure(f'exited with status {code}')}", file=sys.stderr
            )
            return 1
    progress("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
