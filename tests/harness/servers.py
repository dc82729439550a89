"""The tests' PostgreSQL and Redis servers: the local app's own (ci.localapp.servers), one source.

Tests get throw-away servers in temporary directories; `make run` the same classes on its data
directory.
"""

from ci.localapp.servers import (
    INSTALL_HINT,
    START_TIMEOUT,
    HarnessError,
    PostgresServer,
    RedisServer,
    free_port,
    postgres_bindir,
    wait_for_port,
)

__all__ = [
    "INSTALL_HINT",
    "START_TIMEOUT",
    "HarnessError",
    "PostgresServer",
    "RedisServer",
    "free_port",
    "postgres_bindir",
    "wait_for_port",
]
