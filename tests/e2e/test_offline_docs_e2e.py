"""/docs and /redoc render every operation in headless Chromium with every outside host unreachable."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(f"sqlite:///{tmp_path_factory.mktemp('docs') / 'telemetry.db'}")
    try:
        yield process.wait_ready()
    finally:
        process.kill()


@pytest.fixture
def render(tmp_path: Path) -> Callable[[str], str]:
    """The DOM of a page after its scripts ran, as headless Chromium sees it with only loopback reachable."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not on PATH (Debian package chromium, listed in .ci/apt-packages.txt)")

    def dump(url: str) -> str:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            # loopback only: names other than 127.0.0.1 do not resolve, anything else goes to a closed proxy
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    return dump


def _operations(server: ServerProcess) -> list[dict[str, Any]]:
    spec = server.client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    ops = [op for item in spec["paths"].values() for op in item.values() if isinstance(op, dict)]
    assert len(ops) >= 8
    return ops


def test_swagger_ui_renders_every_operation_without_network(
    server: ServerProcess, render: Callable[[str], str]
) -> None:
    dom = render(f"{server.base_url}/docs")
    assert "OAS 3.1" in dom, "Swagger UI did not render the spec"
    # Swagger UI gives each operation the element id operations-{tag}-{operationId}
    ids = {op["operationId"]: f'id="operations-{op["tags"][0]}-{op["operationId"]}"' for op in _operations(server)}
    assert [name for name, element in ids.items() if element not in dom] == []


def test_redoc_renders_every_operation_without_network(server: ServerProcess, render: Callable[[str], str]) -> None:
    dom = render(f"{server.base_url}/redoc")
    missing = [op["operationId"] for op in _operations(server) if f"operation/{op['operationId']}" not in dom]
    assert missing == []


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_their_assets_from_the_service_only(server: ServerProcess, page: str) -> None:
    html = server.client.get(page).text
    urls = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"""url: ?'([^']+)'""", html)
    assert urls, html
    for url in urls:
        assert re.match(r"/[^/]", url), f"{page} loads {url} from elsewhere"
        response = server.client.get(url)
        assert response.status_code == 200, url
    assert "http://" not in html.replace("window.location", "")
    assert "https://" not in html


def test_docs_assets_are_a_fixed_set_counted_under_their_own_route(server: ServerProcess) -> None:
    assert server.client.get("/docs-assets/swagger-ui.css").headers["content-type"].startswith("text/css")
    missing = server.client.get("/docs-assets/..%2Fcore.py")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    metrics = server.client.get("/metrics").text
    assert 'route="/docs-assets/{name}",status="200"' in metrics


def _examples(node: Any) -> list[Any]:
    """Every example value anywhere in the OpenAPI document (schema `examples`, media-type `example(s)`)."""
    found: list[Any] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "examples" and isinstance(value, list):
                found.extend(value)
            elif key == "examples" and isinstance(value, dict):
                found.extend(item.get("value") for item in value.values() if isinstance(item, dict))
            elif key == "example":
                found.append(value)
            found.extend(_examples(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_examples(item))
    return found


def _mentions_event_id(value: Any) -> bool:
    if isinstance(value, dict):
        return "event_id" in value or any(_mentions_event_id(v) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_event_id(v) for v in value)
    return False


def test_try_it_out_examples_are_real_events_without_a_fixed_id(server: ServerProcess) -> None:
    spec = server.client.get("/openapi.json").json()
    assert [example for example in _examples(spec) if _mentions_event_id(example)] == []
    schemas = spec["components"]["schemas"]
    event = schemas["EventIn"]["examples"][0]
    assert event["metadata"]
    assert "additionalProp1" not in event["metadata"]
    # What Swagger's "Try it out" sends, clicked twice: two new events, never a 409.
    first = server.client.post("/v1/events", json=event)
    second = server.client.post("/v1/events", json=event)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["event_id"] != second.json()["event_id"]
    batch = server.client.post("/v1/events/batch", json=schemas["BatchIn"]["examples"][0])
    assert batch.status_code == 200
    assert batch.json()["accepted"] == len(schemas["BatchIn"]["examples"][0]["events"])


def test_swagger_try_it_out_twice_stores_two_events(tmp_path: Path) -> None:
    """The default body Swagger UI offers for POST /v1/events, executed twice in a real browser: 201, 201."""
    from tests.support.browser import Chromium

    server = ServerProcess(f"sqlite:///{tmp_path / 'try.db'}").wait_ready()
    browser = Chromium(tmp_path / "chromium")
    try:
        spec = server.client.get("/openapi.json").json()
        op = spec["paths"]["/v1/events"]["post"]
        block = f"#operations-{op['tags'][0]}-{op['operationId']}"
        browser.open(f"{server.base_url}/docs")
        browser.wait_for(f"!!document.querySelector('{block} .opblock-summary-control')", 30)
        browser.evaluate(f"document.querySelector('{block} .opblock-summary-control').click()")
        browser.wait_for(f"!!document.querySelector('{block} .try-out__btn')")
        browser.evaluate(f"document.querySelector('{block} .try-out__btn').click()")
        body = json.loads(browser.wait_for(f"document.querySelector('{block} textarea.body-param__text')?.value"))
        assert "event_id" not in body
        assert "additionalProp1" not in json.dumps(body)
        status = f"document.querySelector('{block} .live-responses-table tbody .response-col_status')?.textContent"
        for stored in (1, 2):
            browser.evaluate(f"document.querySelector('{block} .execute, {block} .btn.execute').click()")
            assert browser.wait_for(f"{status}?.trim()") == "201"
            assert server.client.get("/v1/stats").json()["total"] == stored
            browser.evaluate(f"document.querySelector('{block} .btn-clear')?.click()")
            browser.wait_for(f"!{status}")
    finally:
        browser.close()
        server.kill()
