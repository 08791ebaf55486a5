"""API keys on the real server: never in its logs, one warning line in open mode; the hash-key command.

The access matrix (scopes, rate limit, CORS) is tested in process: tests/routes/test_access_routes.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from app.api.access import hash_key
from tests.support.server import ROOT, ServerProcess

pytestmark = pytest.mark.e2e
StartServer = Callable[..., ServerProcess]

INGEST_KEY, READ_KEY, ADMIN_KEY = "ingest-key-0123456789", "read-key-0123456789", "admin-key-0123456789"
KEYS = ",".join(
    [
        f"web:{hash_key(INGEST_KEY)}:ingest",
        f"bi:{hash_key(READ_KEY)}:read",
        f"ops:{hash_key(ADMIN_KEY)}:admin",
    ]
)
EVENT = {"user_id": "user-1", "action": "signup", "source": "web"}
ORIGIN = "https://app.example.org"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(start_server: StartServer) -> ServerProcess:
    return start_server(env={"TELEMETRY_API_KEYS": KEYS})


def test_operations_stay_open_and_keys_are_never_logged(keyed: ServerProcess) -> None:
    assert keyed.client.get("/healthz").status_code == 200
    assert keyed.client.get("/readyz").status_code == 200
    assert keyed.client.get("/metrics").status_code == 200
    keyed.client.post("/v1/events", json=EVENT, headers=bearer(INGEST_KEY))
    keyed.client.post("/v1/events", json=EVENT, headers=bearer(READ_KEY))
    keyed.client.post("/v1/events", json=EVENT, headers=bearer("wrong-key-xyz"))
    keyed.wait_for_log(lambda line: line.get("status") == 401)
    output = "\n".join(keyed.stdout + keyed.stderr)
    for secret in (INGEST_KEY, READ_KEY, "wrong-key-xyz"):
        assert secret not in output
    assert not [line for line in keyed.json_lines() if line.get("event") == "access_open"]


def test_open_mode_says_so_in_one_warning_line(start_server: StartServer) -> None:
    server = start_server()
    assert server.client.post("/v1/events", json=EVENT).status_code == 201
    assert server.client.get("/v1/events").status_code == 200
    warnings = [line for line in server.json_lines() if line.get("level") == "warning"]
    assert [line["event"] for line in warnings] == ["access_open"]


def test_hash_key_command_prints_the_hash_to_configure() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "hash-key", "s3cret"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == hash_key("s3cret")
    fresh = subprocess.run(
        [sys.executable, "-m", "app", "hash-key"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    key_line, hash_line = fresh.stdout.strip().splitlines()
    key = key_line.removeprefix("key:").strip()
    assert len(key) >= 40
    assert hash_line.removeprefix("sha256:").strip() == hash_key(key)
