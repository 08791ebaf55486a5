"""A real Prometheus server (Debian's `prometheus` binary) in a temp dir, scraping the test's service."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from tests.support.monitoring import MONITORING
from tests.support.server import free_port

T = TypeVar("T")


def config_for_test(api_target: str, own_port: int) -> dict[str, Any]:
    """The repo's monitoring/prometheus.yml with the test's addresses, 1 s intervals and absolute rule paths."""
    config: dict[str, Any] = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"})
    config["rule_files"] = [str(MONITORING / pattern) for pattern in config["rule_files"]]
    targets = {"api:8000": api_target, "localhost:9090": f"127.0.0.1:{own_port}"}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [targets[target] for target in static["targets"]]
    return config


class PrometheusProcess:
    """`prometheus` run on the repo's config (see config_for_test) against the test's service."""

    def __init__(self, binary: str, workdir: Path, target: str, extra_args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = config_for_test(target, self.port)
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
                *extra_args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.base_url, timeout=10)

    def wait_ready(self, timeout_s: float = 20) -> PrometheusProcess:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                return self.client.get("/-/ready").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout_s, lambda: f"prometheus not ready: {self.log_tail()}")
        return self

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; raises with Prometheus's own error text when the expression is refused."""
        response = self.client.get("/api/v1/query", params={"query": expr})
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"{expr!r}: {body.get('errorType')}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def query_by(self, expr: str, label: str) -> dict[str, float]:
        return {sample["metric"].get(label, ""): float(sample["value"][1]) for sample in self.query(expr)}

    def api(self, path: str) -> Any:
        body = self.client.get(path).json()
        assert body["status"] == "success", body
        return body["data"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.client.close()
        self._log.close()


def wait_until(check: Callable[[], T | None], timeout_s: float, message: Callable[[], str]) -> T:
    """Poll check() every 0.2 s until it returns something truthy; fail with message() at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message())
        time.sleep(0.2)
