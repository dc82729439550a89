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
from urllib.parse import urlsplit

from ci.localapp.datadir import DataDir
from ci.localapp.process import StackError
from ci.localapp.prometheus import start_prometheus
from ci.localapp.servers import HarnessError, PostgresServer, RedisServer
from ci.localapp.services import load_services
from ci.localapp.stack import HOST, REPO_ROOT, LocalStack
from ci.localapp.supervise import RestartPolicy, supervise


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
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep PostgreSQL, Redis, media, credentials and logs here (default: throw-away)",
    )
    parser.add_argument("--reset", action="store_true", help="delete --data-dir first")
    parser.add_argument(
        "--observe",
        action="store_true",
        help="also start Prometheus with the cluster's alert rules, scraping every service",
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=RestartPolicy.max_restarts,
        help="restarts in a row of a failing process before the app stops",
    )
    parser.add_argument(
        "--restart-delay",
        type=float,
        default=RestartPolicy.first_delay,
        help="seconds before the first restart (doubling, at most 30)",
    )
    args = parser.parse_args(argv)
    if args.reset and args.data_dir is None:
        parser.error("--reset: needs --data-dir (the throw-away default starts empty anyway)")
    if args.max_restarts < 0 or args.restart_delay < 0:
        parser.error("--max-restarts and --restart-delay cannot be negative")
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
        # As servers bind: a port held only by closed connections (TIME-WAIT) is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise StackError(
                f"--edge-port {port}: {HOST}:{port} is in use ({exc.strerror})"
            ) from exc


@contextlib.contextmanager
def backing_services(data_dir: DataDir | None) -> Iterator[tuple[str, str]]:
    """(PostgreSQL admin URL, Redis URL): kept in `data_dir` with generated passwords; without
    one, from the environment or throw-away servers of our own."""
    if data_dir is not None:
        with kept_servers(data_dir) as urls:
            yield urls
        return
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


@contextlib.contextmanager
def kept_servers(data_dir: DataDir) -> Iterator[tuple[str, str]]:
    """PostgreSQL and Redis whose data stays in `data_dir`; stopped cleanly, never deleted."""
    data_dir.prepare()
    postgres = PostgresServer(
        workdir=data_dir.postgres, password=data_dir.secret("postgres-admin"), durable=True
    )
    redis_server = RedisServer(
        workdir=data_dir.redis, password=data_dir.secret("redis"), durable=True, databases=16
    )
    with contextlib.ExitStack() as stack:
        if not postgres.initialized:
            progress(f"creating the PostgreSQL cluster in {postgres.datadir}")
            postgres.init()
        stack.callback(postgres.stop)
        postgres.start()
        stack.callback(redis_server.stop)
        redis_server.start()
        yield postgres.url(), redis_server.url(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    data_dir = DataDir(args.data_dir.resolve()) if args.data_dir else None
    policy = RestartPolicy(first_delay=args.restart_delay, max_restarts=args.max_restarts)
    try:
        if args.edge_port is not None:
            ensure_port_free(args.edge_port)
        if data_dir is not None and args.reset:
            progress(f"deleting {data_dir.root} (reset)")
            data_dir.reset()
        progress("starting PostgreSQL and Redis")
        with backing_services(data_dir) as (admin_url, redis_url):
            stack = LocalStack(
                repo_root=REPO_ROOT,
                postgres_admin_url=admin_url,
                redis_url=redis_url,
                static_dir=args.static,
                only=args.only,
                edge_port=args.edge_port,
                ready_timeout=args.ready_timeout,
                progress=progress,
                data_dir=data_dir,
            )
            with stack as urls:
                backing = {"postgres": _address(admin_url), "redis": _address(redis_url)}
                observed = _observe(stack, urls.services, urls.logs, args) if args.observe else {}
                print(json.dumps({**urls.as_json(), **backing, **observed}), flush=True)
                progress(f"up in {stack.start_seconds:.1f}s {stack.timings}; logs in {urls.logs}")
                if data_dir is not None:
                    progress(f"data kept in {data_dir.root} (make reset deletes it)")
                progress(f"open {urls.edge}/ in your browser; Ctrl-C stops the stack")
                return run_until_stopped(stack, stop, policy)
    except (StackError, HarnessError) as exc:
        print(f"local stack failed: {exc}", file=sys.stderr)
        return 1


def _observe(
    stack: LocalStack, services: dict[str, str], logs: Path, args: argparse.Namespace
) -> dict[str, str]:
    """Prometheus beside the stack (stopped and supervised with it): {"prometheus": its URL}."""
    assert stack.workdir is not None
    progress("starting Prometheus (charts/observability/rules)")
    process, url = start_prometheus(
        REPO_ROOT, services, stack.workdir / "prometheus", logs, args.ready_timeout
    )
    stack.processes.append(process)
    progress(f"Prometheus at {url}/ (alerts: {url}/alerts)")
    return {"prometheus": url}


def _address(url: str) -> str:
    """host:port of a server URL, without its credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def run_until_stopped(stack: LocalStack, stop: threading.Event, policy: RestartPolicy) -> int:
    """0 when stopped by a signal; 1 when one of the stack's processes keeps failing."""
    # Started by make (MAKELEVEL): a SIGINT that make alone received must stop the app too.
    make = os.getppid() if os.environ.get("MAKELEVEL") else None
    failure = supervise(stack.processes, stop, policy, progress, stopping_parent=make)
    if failure is not None:
        print(f"local stack failed: {failure}", file=sys.stderr)
        return 1
    progress("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
