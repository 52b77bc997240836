"""Start, watch and stop the real processes of an Airflow deployment in end-to-end tests.

Every process runs in its own session (process group) with its output in ``<logs>/<name>.log``, so
teardown can end it with all its children, and a test that times out can show the tail of every
log. Nothing here fakes a part of Airflow: these are the ``airflow`` commands a deployment runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CLI = Path(sys.executable).parent / "airflow"
#: Read by :func:`worker_hostname`: the host name a worker reports for the tasks it runs.
HOSTNAME_ENV = "MLOBS_E2E_HOSTNAME"
#: How CI (``CI=true``) or a developer starts the local Redis when it is not running.
REDIS_START = (
    "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no "
    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_hostname() -> str:
    """``[core] hostname_callable`` for workers sharing one machine: ``$MLOBS_E2E_HOSTNAME``.

    Airflow records ``task_instance.hostname`` from this callable, not from the Celery node name,
    so two workers on one machine need it to be told apart."""
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()


class Processes:
    """Long-running ``airflow`` commands started by a test, each in its own process group."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start ``airflow <args>`` as ``name``, its output in ``<logs>/<name>.log``."""
        with (self.logs / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                [str(CLI), *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: teardown ends its children too
            )
        self.running[name] = process
        return process

    def exited(self) -> dict[str, int]:
        """The processes that have ended, with their exit codes."""
        return {name: code for name, p in self.running.items() if (code := p.poll()) is not None}

    def tails(self, chars: int = 3000) -> str:
        """The last ``chars`` characters of every process log."""
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM every process group, then SIGKILL the groups still there after ``grace`` seconds."""
        for process in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.running.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            # The leader may be gone while a child (a Celery pool process, a task) lingers.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    processes: Processes,
    interval: float = 1.0,
    extra: Callable[[], str] | None = None,
) -> float:
    """Poll ``predicate`` until true; returns the seconds waited. Fails the test with every log's
    tail (and ``extra()``) on timeout, or at once when one of the processes has exited."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        gone = processes.exited()
        elapsed = time.monotonic() - started
        if gone or elapsed > timeout:
            reason = f"{', '.join(f'{n} exited with {c}' for n, c in gone.items())}" if gone else "timed out"
            details = f"\n{extra()}" if extra else ""
            pytest.fail(
                f"{reason} after {elapsed:.0f}s waiting for {what}{details}\n{processes.tails()}",
                pytrace=False,
            )
        time.sleep(interval)


def api_call(port: int, method: str, path: str, body: dict[str, Any] | None = None, tries: int = 10) -> Any:
    """A JSON request to the API server on 127.0.0.1; retries a server error or a refused
    connection a few times (the server may still be starting), raises a client error at once."""
    errors: list[str] = []
    for _ in range(tries):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:1000]!r}") from exc
            errors.append(f"{exc.code}: {exc.read()[:300]!r}")
        except OSError as exc:
            errors.append(repr(exc))
        time.sleep(2)
    raise AssertionError(f"{method} {path} failed {tries} times: {errors}")


def require_redis(url: str) -> Any:
    """A client of the Redis at ``url``. Skips the test when none answers, except under ``CI=true``,
    where that fails with the command that starts it."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"no Redis at {url} ({exc}); start it with: {REDIS_START}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: the Celery end-to-end test must run)", pytrace=False)
        pytest.skip(message)
    return client
