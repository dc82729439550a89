"""Real temporary git repositories shaped like this monorepo (helpers for the fixtures)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

AUTH = """\
name: auth
kind: python
description: Users, passwords and signed tokens
port: 8000
health: /health
ready: /ready
route: /api/auth
needs: [postgres, redis]
uses: [servicekit]
run: [uvicorn, auth.main:app, --host, 0.0.0.0, --port, "8000"]
migrate: [python, -m, auth.migrate]
"""

BACKEND = """\
name: backend
kind: python
description: Conversations and messages
port: 8000
health: /health
ready: /ready
route: /api/chat
needs: [postgres]
uses: [servicekit]
run: [uvicorn, backend.main:app, --host, 0.0.0.0, --port, "8000"]
workers:
  - name: outbox
    run: [python, -m, backend.outbox]
"""

FRONTEND = """\
name: frontend
kind: node
description: The web client
port: 8080
health: /health
ready: /ready
route: /
run: [nginx, -g, daemon off;]
"""

BASE_FILES: dict[str, str] = {
    "README.md": "# fixture\n",
    "pyproject.toml": "[project]\nname = 'fixture'\n",
    "uv.lock": "version = 1\n",
    "Makefile": "test:\n\ttrue\n",
    "dagger.json": '{"name": "ci"}\n',
    "ci/src/ci/main.py": "# pipeline\n",
    "services/auth/service.yaml": AUTH,
    "services/auth/src/auth/main.py": "app = None\n",
    "services/backend/service.yaml": BACKEND,
    "services/backend/src/backend/main.py": "app = None\n",
    "services/frontend/service.yaml": FRONTEND,
    "services/frontend/package.json": "{}\n",
    "services/servicekit/pyproject.toml": "[project]\nname = 'servicekit'\n",
    "services/servicekit/src/servicekit/__init__.py": "",
    "charts/common/Chart.yaml": "apiVersion: v2\nname: common\ntype: library\nversion: 0.1.0\n",
    "charts/auth/Chart.yaml": "apiVersion: v2\nname: auth\nversion: 0.1.0\n",
    "charts/backend/Chart.yaml": "apiVersion: v2\nname: backend\nversion: 0.1.0\n",
    "charts/postgres/Chart.yaml": "apiVersion: v2\nname: postgres\nversion: 0.1.0\n",
    "argocd/root.yaml": "kind: Application\n",
}


class Repo:
    """A git repository in a temporary directory, committed to with plain git."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout.strip()

    def write(self, files: Mapping[str, str]) -> None:
        for path, text in files.items():
            target = self.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def commit(self, files: Mapping[str, str], message: str = "change") -> str:
        self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


MakeRepo = Callable[..., Repo]
