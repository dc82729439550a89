"""The environment each service of the local stack gets (the conventions' variable names)."""

from __future__ import annotations

from pathlib import Path

from ci.localapp.services import StackService, Worker
from ci.localapp.stack import Wiring, service_environment

URLS = {
    "auth": "http://127.0.0.1:1001",
    "ai": "http://127.0.0.1:1002",
    "backend": "http://127.0.0.1:1003",
}
WIRING = Wiring(
    urls=URLS,
    routes={"auth": "/api/auth", "data-processor": "/api/stats"},
    databases={
        name: f"postgresql://u@127.0.0.1:5/stack_{name.replace('-', '_')}_x"
        for name in ("auth", "backend", "data-processor")
    },
    redis_url="redis://127.0.0.1:6/7",
    media_root=Path("/tmp/media"),
    django_secret_key="generated-for-this-start",
)
INHERITED = {
    "PATH": "/usr/bin",
    "HOME": "/root",
    "DATABASE_URL": "postgresql://leaked",
    "AI_OPENAI_API_KEY": "leaked",
}


def _service(name: str, needs: set[str]) -> StackService:
    return StackService(
        name=name,
        directory=Path("/repo/services") / name,
        ready="/ready",
        route=f"/api/{name}",
        needs=frozenset(needs),
        run=("uvicorn", f"{name}.main:app"),
        migrate=None,
        workers=(Worker("consumer", ("python", "-m", "x")),),
    )


def test_backend_gets_its_database_redis_jwks_and_ai() -> None:
    env = service_environment(_service("backend", {"postgres", "redis"}), WIRING, INHERITED)
    assert env["DATABASE_URL"] == "postgresql://u@127.0.0.1:5/stack_backend_x"
    assert env["REDIS_URL"] == "redis://127.0.0.1:6/7"
    assert env["JWKS_URL"] == "http://127.0.0.1:1001/.well-known/jwks.json"
    assert env["AI_URL"] == "http://127.0.0.1:1002"


def test_a_service_without_backing_services_gets_no_urls_for_them() -> None:
    env = service_environment(_service("media-storage", set()), WIRING, INHERITED)
    assert "DATABASE_URL" not in env
    assert "REDIS_URL" not in env
    assert env["MEDIA_ROOT"] == "/tmp/media"


def test_the_callers_service_variables_never_leak_in() -> None:
    env = service_environment(_service("ai", {"redis"}), WIRING, INHERITED)
    assert "DATABASE_URL" not in env
    assert "AI_OPENAI_API_KEY" not in env
    assert env["AI_PROVIDER"] == "local"
    assert env["HOME"] == "/root"


def test_a_real_model_is_used_only_when_asked_for() -> None:
    asked = {
        "AI_PROVIDER": "openai",
        "AI_OPENAI_BASE_URL": "http://127.0.0.1:11434/v1",
        "AI_OPENAI_MODEL": "llama3.2",
        "AI_OPENAI_API_KEY": "k",
        "DATABASE_URL": "postgresql://elsewhere/db",
    }
    env = service_environment(_service("ai", {"redis"}), WIRING, asked)
    assert env["AI_PROVIDER"] == "openai"
    assert env["AI_OPENAI_BASE_URL"] == "http://127.0.0.1:11434/v1"
    assert env["AI_OPENAI_MODEL"] == "llama3.2"
    assert env["AI_OPENAI_API_KEY"] == "k"
    assert "DATABASE_URL" not in env
    backend = service_environment(_service("backend", {"postgres"}), WIRING, asked)
    assert "AI_OPENAI_API_KEY" not in backend


def test_the_venv_comes_first_on_path() -> None:
    env = service_environment(_service("auth", {"postgres"}), WIRING, INHERITED)
    first, *rest = env["PATH"].split(":")
    assert (Path(first) / "python").exists()
    assert rest == ["/usr/bin"]
    assert env["AUTH_DEV_MODE"] == "true"


def test_data_processor_gets_the_generated_secret_key() -> None:
    env = service_environment(_service("data-processor", {"postgres", "redis"}), WIRING, {})
    assert env["DJANGO_SECRET_KEY"] == "generated-for-this-start"
    assert env["DJANGO_FORCE_SCRIPT_NAME"] == "/api/stats"
