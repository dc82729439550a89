"""LocalStack: the Python services as real processes on loopback, behind the NGINX edge.

Each service runs its production server (service.yaml `run`, rebound to a free loopback port),
after its `migrate` command ran against a database of its own, with its `workers` beside it,
and with the conventions' environment variables pointing the services at each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ci.localapp.argv import with_listen_address
from ci.localapp.datadir import DataDir
from ci.localapp.edge import READY_PATH, chart_route, edge_process
from ci.localapp.process import ManagedProcess, StackError, run_all_to_completion, wait_until_ready
from ci.localapp.servers import free_port
from ci.localapp.services import StackService, load_services

HOST = "127.0.0.1"
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # ci/src, where `ci.localapp` lives
REPO_ROOT = SOURCE_ROOT.parents[1]
MIGRATE_TIMEOUT = 120.0

# Names the services read (conventions); never inherited from the caller's environment.
SERVICE_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "JWKS_URL",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "AI_URL",
    "AI_PROVIDER",
    "AI_OPENAI_BASE_URL",
    "AI_OPENAI_MODEL",
    "AI_OPENAI_API_KEY",
    "MEDIA_ROOT",
    "MEDIA_MAX_UPLOAD_BYTES",
    "DJANGO_SECRET_KEY",
    "DJANGO_FORCE_SCRIPT_NAME",
    "AUTH_SIGNING_KEYS_DIR",
    "AUTH_DEV_MODE",
    "AUTH_SERVICE_CLIENTS",
    "AUTH_URL",
    "AI_CLIENT_SECRET",
    "FORWARDED_ALLOW_IPS",
    "WEB_CONCURRENCY",
)


@dataclass(frozen=True)
class StackUrls:
    """Where the running stack answers: the edge (ingress stand-in) and each service directly."""

    edge: str
    services: dict[str, str]
    logs: Path

    def as_json(self) -> dict[str, object]:
        return {"edge": self.edge, "services": self.services, "logs": str(self.logs)}


@dataclass(frozen=True)
class Wiring:
    """Everything one service's environment is made from."""

    urls: Mapping[str, str]
    routes: Mapping[str, str]  # service name -> its route prefix at the edge (/api/stats)
    databases: Mapping[str, str]
    redis_url: str
    media_root: Path
    django_secret_key: str
    # backend's client secret for ai's service tokens (auth's AUTH_SERVICE_CLIENTS), per start
    ai_client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    signing_keys: Path | None = None  # auth's AUTH_SIGNING_KEYS_DIR (else a key per start)


def service_environment(
    service: StackService, wiring: Wiring, inherited: Mapping[str, str]
) -> dict[str, str]:
    """The environment of one service's processes (server, migration and workers)."""
    env = {k: v for k, v in inherited.items() if k not in SERVICE_VARIABLES}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, inherited.get("PATH", os.defpath)])
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("LOG_LEVEL", "INFO")
    # One worker process per server: two cores, five services.
    env["WEB_CONCURRENCY"] = "1"
    if "auth" in wiring.urls:
        env["JWKS_URL"] = f"{wiring.urls['auth']}/.well-known/jwks.json"
    if "postgres" in service.needs:
        env["DATABASE_URL"] = wiring.databases[service.name]
    if "redis" in service.needs:
        env["REDIS_URL"] = wiring.redis_url
    env.update(_own_variables(service.name, wiring))
    if service.name == "ai" and inherited.get("AI_PROVIDER") == "openai":
        # Asked for explicitly (`AI_PROVIDER=openai ... make run`): a real model instead of the
        # demo one. Nothing else of the caller's AI settings is taken without that.
        env.update({k: v for k, v in inherited.items() if k.startswith("AI_OPENAI_")})
        env["AI_PROVIDER"] = "openai"
    return env


def _own_variables(name: str, wiring: Wiring) -> dict[str, str]:
    if name == "auth":
        # Every request reaches auth from the edge's one loopback address, where in production
        # each user has an IP of their own: the per-IP budgets would make the e2e suite wait
        # only. Per-account limits keep their production values (the e2e suite trips them).
        keys = {"AUTH_SIGNING_KEYS_DIR": str(wiring.signing_keys)} if wiring.signing_keys else {}
        return {
            **keys,
            "AUTH_DEV_MODE": "true",
            "AUTH_LOGIN_LIMIT_PER_IP": "1000",
            "AUTH_REGISTER_LIMIT_PER_IP": "1000",
            "AUTH_SERVICE_CLIENTS": json.dumps({"backend": wiring.ai_client_secret}),
        }
    if name == "backend" and "ai" in wiring.urls:
        return {
            "AI_URL": wiring.urls["ai"],
            "AUTH_URL": wiring.urls.get("auth", ""),
            "AI_CLIENT_SECRET": wiring.ai_client_secret,
        }
    if name == "ai":
        return {"AI_PROVIDER": "local"}
    if name == "media-storage":
        return {"MEDIA_ROOT": str(wiring.media_root)}
    if name == "data-processor":
        # Behind the edge, like behind the ingress: links and the admin's assets carry the prefix.
        return {
            "DJANGO_SECRET_KEY": wiring.django_secret_key,
            "DJANGO_FORCE_SCRIPT_NAME": wiring.routes["data-processor"],
        }
    return {}


@dataclass
class LocalStack:
    """Start with `start()` (or `with LocalStack(...) as urls:`), stop with `stop()`."""

    repo_root: Path
    postgres_admin_url: str
    redis_url: str
    static_dir: Path | None = None
    only: Sequence[str] | None = None
    edge_port: int | None = None
    ready_timeout: float = 90.0
    extra_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    progress: Callable[[str], None] = field(default=lambda _: None)  # one line per step
    # `make run`: databases, media, credentials and logs kept there (None: all throw-away)
    data_dir: DataDir | None = None
    processes: list[ManagedProcess] = field(default_factory=list, init=False)
    databases: list[str] = field(default_factory=list, init=False)
    workdir: Path | None = field(default=None, init=False)
    start_seconds: float | None = field(default=None, init=False)
    timings: dict[str, float] = field(default_factory=dict, init=False)  # seconds per phase
    killed: list[str] = field(default_factory=list, init=False)  # ignored SIGTERM at stop

    def __enter__(self) -> StackUrls:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> StackUrls:
        started = time.monotonic()
        try:
            urls = self._start()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return urls

    def _start(self) -> StackUrls:
        services = self._selected(load_services(self.repo_root))
        urls = {s.name: f"http://{HOST}:{free_port()}" for s in services}
        databases = {s.name: self._database(s) for s in services if "postgres" in s.needs}
        if self.data_dir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="local-stack-"))
            logs, media = self.workdir / "logs", self.workdir / "media"
            logs.mkdir()
            media.mkdir()
            wiring = Wiring(
                urls=urls,
                routes={s.name: s.route for s in services},
                databases=databases,
                redis_url=self.redis_url,
                media_root=media,
                django_secret_key=secrets.token_urlsafe(48),
            )
        else:
            self.workdir = self.data_dir.root / "run"
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir.mkdir()
            logs = self.data_dir.new_log_folder()
            wiring = Wiring(
                urls=urls,
                routes={s.name: s.route for s in services},
                databases=databases,
                redis_url=self.redis_url,
                media_root=self.data_dir.media,
                django_secret_key=self.data_dir.secret("django-secret-key"),
                ai_client_secret=self.data_dir.secret("backend-client-secret"),
                signing_keys=self.data_dir.signing_keys(),
            )
        envs = {
            s.name: self._environment(s, wiring, self.workdir / "run" / s.name) for s in services
        }
        migrating = [s.name for s in services if s.migrate is not None]
        if migrating:
            self.progress(f"migrating the databases of {', '.join(migrating)}")
        with self._timed("migrations"):
            self._migrate(services, envs, logs)
        self.progress(f"starting {', '.join(urls)} and waiting until each is ready")
        with self._timed("servers"):
            self._start_servers(services, envs, urls, logs)
        self.progress("starting the edge (NGINX)")
        with self._timed("edge"):
            edge = self._start_edge(services, urls, logs)
        return StackUrls(edge=edge, services=urls, logs=logs)

    def exited(self) -> ManagedProcess | None:
        """The first process of the running stack that is no longer running, if any."""
        return next((p for p in self.processes if not p.running), None)

    @contextlib.contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.timings[phase] = round(time.monotonic() - started, 2)

    def _selected(self, services: list[StackService]) -> list[StackService]:
        if self.only is None:
            return services
        known = {s.name for s in services}
        unknown = sorted(set(self.only) - known)
        if unknown:
            raise StackError(
                f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
            )
        return [s for s in services if s.name in self.only]

    def _environment(
        self, service: StackService, wiring: Wiring, runtime_dir: Path
    ) -> dict[str, str]:
        env = service_environment(service, wiring, os.environ)
        # Per-process runtime files (gunicorn's control socket) apart from other servers'.
        runtime_dir.mkdir(parents=True, mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(runtime_dir)
        env.update(self.extra_env.get(service.name, {}))
        return env

    def _database(self, service: StackService) -> str:
        """The URL of the service's database: kept with a role of its own in the data
        directory (as in the cluster), else a fresh one dropped at stop."""
        if self.data_dir is not None:
            password = self.data_dir.secret(f"postgres-{service.name}")
            return _ensure_database(self.postgres_admin_url, service.database_name, password)
        name = f"stack_{service.database_name}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.postgres_admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return _with_database(self.postgres_admin_url, name)

    def _migrate(
        self, services: list[StackService], envs: dict[str, dict[str, str]], logs: Path
    ) -> None:
        migrations = [
            ManagedProcess(
                name=f"{service.name} migrate",
                argv=service.migrate,
                env=envs[service.name],
                cwd=service.directory,
                log_path=logs / f"{service.name}-migrate.log",
            )
            for service in services
            if service.migrate is not None
        ]
        run_all_to_completion(migrations, MIGRATE_TIMEOUT)

    def _start_servers(
        self,
        services: list[StackService],
        envs: dict[str, dict[str, str]],
        urls: dict[str, str],
        logs: Path,
    ) -> None:
        waiting: dict[str, tuple[ManagedProcess, str]] = {}
        workers: list[ManagedProcess] = []
        for service in services:
            port = int(urls[service.name].rsplit(":", 1)[1])
            server = self._spawn(
                service.name,
                with_listen_address(service.run, HOST, port),
                envs[service.name],
                service.directory,
                logs / f"{service.name}.log",
            )
            waiting[service.name] = (server, urls[service.name] + service.ready)
            for worker in service.workers:
                name = f"{service.name} {worker.name}"
                log = logs / f"{service.name}-{worker.name}.log"
                workers.append(
                    self._spawn(name, worker.run, envs[service.name], service.directory, log)
                )
        wait_until_ready(waiting, self.ready_timeout)
        for process in workers:
            if not process.running:
                raise process.failure("worker exited while the services started")

    def _start_edge(self, services: list[StackService], urls: dict[str, str], logs: Path) -> str:
        assert self.workdir is not None
        port = self.edge_port or free_port()
        edge, instance = edge_process(
            self.repo_root,
            [chart_route(self.repo_root, s.name, urls[s.name]) for s in services],
            port=port,
            static_dir=self.static_dir,
            run_dir=self.workdir / "edge",
            logs=logs,
        )
        self.processes.append(edge)
        edge.start()
        base = f"http://{HOST}:{port}"
        probe = {"edge": (edge, base + READY_PATH)}
        wait_until_ready(probe, self.ready_timeout, identities={"edge": instance})
        return base

    def _spawn(
        self, name: str, argv: Sequence[str], env: dict[str, str], cwd: Path, log: Path
    ) -> ManagedProcess:
        process = ManagedProcess(name=name, argv=argv, env=env, cwd=cwd, log_path=log)
        self.processes.append(process)
        process.start()
        return process

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL), drop the databases, keep the logs."""
        started = time.monotonic()
        for process in self.processes:
            process.terminate()
        self.killed = [p.name for p in self.processes if p.wait_or_kill()]
        self.processes.clear()
        self.timings["stop"] = round(time.monotonic() - started, 2)
        with contextlib.suppress(psycopg.Error):
            self._drop_databases()
        if self.workdir is not None and self.data_dir is None:
            shutil.rmtree(self.workdir / "media", ignore_errors=True)

    def _drop_databases(self) -> None:
        if not self.databases:
            return
        with psycopg.connect(self.postgres_admin_url, autocommit=True, connect_timeout=10) as conn:
            for name in self.databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.databases.clear()


def _ensure_database(admin_url: str, name: str, password: str) -> str:
    """Role `name` (login with `password`) owning database `name`, created when missing."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        role = sql.Identifier(name)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(f"{verb} ROLE {{}} LOGIN PASSWORD {{}}").format(role, sql.Literal(password))
        )
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
    parts = urlsplit(admin_url)
    netloc = f"{quote(name, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, f"/{name}", "", ""))


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))
