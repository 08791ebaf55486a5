"""GET /: the live events page in a real headless Chromium against a real server process."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.browser import Chromium
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROWS = "[...document.querySelectorAll('#events tbody tr')]"
USERS_SHOWN = f"{ROWS}.map(tr => tr.children[1].textContent)"
VISIBLE = "(selector => getComputedStyle(document.querySelector(selector)).display !== 'none')"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path / "chromium")
    try:
        yield chromium
    finally:
        chromium.close()


def _post(server: ServerProcess, user_id: str, action: str, ago_s: float, headers: dict[str, str] | None = None) -> str:
    moment = (datetime.now(UTC) - timedelta(seconds=ago_s)).isoformat()
    body = {"user_id": user_id, "action": action, "source": "web", "timestamp": moment,
            "metadata": {"page": f"/{user_id}", "plan": "pro"}}  # fmt: skip
    response = server.client.post("/v1/events", json=body, headers=headers or {})
    assert response.status_code == 201, response.text
    return str(response.json()["event_id"])


def _type_into(browser: Chromium, name: str, text: str) -> None:
    browser.evaluate(
        f"(() => {{ const input = document.querySelector('#filters [name={name}]');"
        f" input.value = {json.dumps(text)}; input.dispatchEvent(new Event('input', {{bubbles: true}})); }})()"
    )


def test_the_page_shows_new_events_without_a_reload_newest_first(
    start_server: Callable[..., ServerProcess], browser: Chromium, tmp_path: Path
) -> None:
    server = start_server()
    _post(server, "ana", "page_view", ago_s=30)
    _post(server, "ben", "click", ago_s=20)
    _post(server, "ana", "click", ago_s=10)
    browser.open(f"{server.base_url}/")
    assert browser.wait_for(f"{USERS_SHOWN}.length === 3 && {USERS_SHOWN}") == ["ana", "ben", "ana"]
    browser.evaluate("window.openedOnce = true")  # gone if the page reloads
    assert browser.evaluate(f"{VISIBLE}('#key-form')") is False  # open mode: no key asked

    # Posted after the page opened: it appears on top, by itself.
    event_id = _post(server, "cleo", "purchase", ago_s=0)
    assert browser.wait_for(f"{USERS_SHOWN}[0] === 'cleo' && {USERS_SHOWN}") == ["cleo", "ana", "ben", "ana"]
    assert browser.evaluate("window.openedOnce === true")
    # Counts per action over the last hour, from /v1/stats.
    counts = browser.wait_for(
        "(() => { const c = Object.fromEntries([...document.querySelectorAll('#counts tr')]"
        ".map(tr => [tr.children[0].textContent, Number(tr.children[1].textContent)]));"
        " return c.purchase === 1 && c; })()"
    )
    assert counts == {"click": 2, "page_view": 1, "purchase": 1}

    # A click shows the event's metadata.
    browser.evaluate(f"document.querySelector('#events tbody tr[data-event-id=\"{event_id}\"]').click()")
    detail = json.loads(browser.wait_for("document.querySelector('#detail').textContent.startsWith('{')"
                                         " && document.querySelector('#detail').textContent"))  # fmt: skip
    assert detail["event_id"] == event_id
    assert detail["metadata"] == {"page": "/cleo", "plan": "pro"}

    links = browser.evaluate("[...document.querySelectorAll('nav a')].map(a => new URL(a.href).pathname)")
    assert {"/docs", "/metrics"} <= set(links)
    for path in ("/docs", "/metrics"):
        assert server.client.get(path).status_code == 200
    screenshot = browser.screenshot(tmp_path / "live-page.png")
    assert screenshot.stat().st_size > 10_000

    # Filters: user_id, then action, then source.
    _type_into(browser, "user_id", "ana")
    assert browser.wait_for(f"{USERS_SHOWN}.length === 2 && {USERS_SHOWN}") == ["ana", "ana"]
    _type_into(browser, "action", "click")
    assert browser.wait_for(f"{USERS_SHOWN}.length === 1 && {USERS_SHOWN}") == ["ana"]
    _type_into(browser, "source", "ios")
    assert browser.wait_for(f"{ROWS}.length === 0 && document.querySelector('#total').textContent") == (
        "0 events in the last hour"
    )


def test_with_keys_the_page_asks_for_a_read_key_and_keeps_it_for_the_tab_only(
    start_server: Callable[..., ServerProcess], browser: Chromium, tmp_path: Path
) -> None:
    from app.api.access import hash_key

    reader, writer = "read-key-0123456789abcdef", "ingest-key-0123456789abcdef"
    keys = f"page:{hash_key(reader)}:read,app:{hash_key(writer)}:ingest"
    server = start_server(env={"TELEMETRY_API_KEYS": keys})
    _post(server, "dana", "signup", ago_s=5, headers={"authorization": f"Bearer {writer}"})
    assert server.client.get("/").status_code == 200  # the page itself is public; the events are not
    browser.open(f"{server.base_url}/")
    assert browser.wait_for(f"{VISIBLE}('#key-form')")
    assert browser.evaluate(f"{ROWS}.length") == 0
    browser.screenshot(tmp_path / "live-page-asks-key.png")

    browser.evaluate(
        f"(() => {{ document.querySelector('#key').value = {json.dumps(reader)};"
        " document.querySelector('#key-form').requestSubmit(); })()"
    )
    assert browser.wait_for(f"{USERS_SHOWN}.length === 1 && {USERS_SHOWN}") == ["dana"]
    assert browser.evaluate(f"{VISIBLE}('#key-form')") is False
    assert browser.evaluate("sessionStorage.getItem('telemetry.readKey')") == reader
    assert browser.evaluate("localStorage.length") == 0
    assert browser.evaluate("document.cookie") == ""
    browser.screenshot(tmp_path / "live-page-keyed.png")


def test_the_page_loads_nothing_from_outside_the_service(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    html = server.client.get("/").text
    assert "http://" not in html
    assert "https://" not in html
    for asset in ("/live-assets/live.js", "/live-assets/live.css"):
        response = server.client.get(asset)
        assert response.status_code == 200
        assert "https://" not in response.text
    assert server.client.get("/live-assets/..%2Fmain.py").status_code == 404
    assert shutil.which("chromium")  # the page tests above need it; CI installs it (.ci/apt-packages.txt)
