"""Start the real service as a process (python -m app serve) and drive it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A running `python -m app serve`; stdout is collected line by line for the log assertions."""

    def __init__(
        self,
        database_url: str,
        env: Mapping[str, str] | None = None,
        extra_args: list[str] | None = None,
        port: int | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
        full_env.update(env or {})
        full_env["TELEMETRY_DATABASE_URL"] = database_url
        full_env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(self.port), *(extra_args or [])],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=preexec_fn,  # e.g. a lower file-descriptor limit for the server alone
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.client = httpx.Client(base_url=self.base_url, timeout=30)

    @staticmethod
    def _drain(stream: Any, into: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            into.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_ready(self, timeout_s: float = 30) -> ServerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}: {self.stderr[-20:]} {self.stdout[-20:]}"
                )
            try:
                if self.client.get("/readyz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready in {timeout_s}s: {self.stdout[-20:]} {self.stderr[-20:]}")

    def json_lines(self) -> list[dict[str, Any]]:
        """Every stdout line parsed as JSON; fails the test on any line that is not a JSON object."""
        lines = []
        for line in list(self.stdout):
            value = json.loads(line)
            assert isinstance(value, dict), line
            lines.append(value)
        return lines

    def wait_for_log(self, predicate: Any, timeout_s: float = 5) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = [line for line in self.json_lines() if predicate(line)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def terminate(self, timeout_s: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        for reader in self._readers:
            reader.join(timeout=5)
        self.client.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.client.close()
