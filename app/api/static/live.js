// The live events page: polls the API the way any client reads it; no framework, no outside asset.
"use strict";

const POLL_MS = 2000;
const PAGE = 50;
const KEY_ITEM = "telemetry.readKey"; // sessionStorage: the key lives as long as this tab, never on disk

const $ = (selector) => document.querySelector(selector);
const rows = $("#events tbody");
const status = $("#status");
const filters = $("#filters");
const keyForm = $("#key-form");

let shown = new Map(); // event_id -> event, in the order on screen (newest first)
let olderCursor = null; // next_cursor after the last event on screen: the way further back
let pickedId = null;
let timer = null;
let generation = 0; // the latest refresh: an older one still in flight neither renders nor schedules a poll

function filterParams() {
  const params = new URLSearchParams();
  for (const name of ["user_id", "action", "source"]) {
    const value = filters.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

class NeedsKey extends Error {}

async function api(path, params) {
  const headers = { accept: "application/json" };
  const key = sessionStorage.getItem(KEY_ITEM);
  if (key) headers.authorization = `Bearer ${key}`;
  const response = await fetch(`${path}?${params}`, { headers });
  if (response.status === 401 || response.status === 403) throw new NeedsKey(await problemText(response));
  if (!response.ok) throw new Error(await problemText(response));
  return response.json();
}

async function problemText(response) {
  try {
    const problem = await response.json();
    return `${response.status} ${problem.title || ""}: ${problem.detail || ""}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  td.title = text;
  return td;
}

function row(event, isNew) {
  const tr = document.createElement("tr");
  tr.dataset.eventId = event.event_id;
  tr.append(cell(event.timestamp), cell(event.user_id), cell(event.action), cell(event.source));
  if (isNew) tr.classList.add("new");
  if (event.event_id === pickedId) tr.classList.add("picked");
  tr.addEventListener("click", () => pick(event));
  return tr;
}

function pick(event) {
  pickedId = event.event_id;
  for (const tr of rows.children) tr.classList.toggle("picked", tr.dataset.eventId === pickedId);
  $("#detail").textContent = JSON.stringify(event, null, 2);
}

function render(newest, firstLoad) {
  // The newest page replaces the head of the list; pages already loaded further back stay below it.
  const next = new Map(newest.map((event) => [event.event_id, event]));
  const oldestNewest = newest.at(-1);
  for (const [id, event] of shown) {
    if (!next.has(id) && oldestNewest && olderThan(event, oldestNewest)) next.set(id, event);
  }
  const fragment = document.createDocumentFragment();
  for (const event of next.values()) fragment.append(row(event, !firstLoad && !shown.has(event.event_id)));
  rows.replaceChildren(fragment);
  shown = next;
}

function olderThan(a, b) {
  return a.timestamp < b.timestamp || (a.timestamp === b.timestamp && a.event_id < b.event_id);
}

function renderCounts(stats) {
  const body = $("#counts tbody");
  const counts = Object.entries(stats.by_action).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  body.replaceChildren(...counts.map(([action, n]) => {
    const tr = document.createElement("tr");
    tr.append(cell(action), cell(String(n)));
    return tr;
  }));
  $("#total").textContent = `${stats.total} event${stats.total === 1 ? "" : "s"} in the last hour`;
}

async function refresh(firstLoad = false) {
  clearTimeout(timer);
  const mine = ++generation;
  const params = filterParams();
  const since = new Date(Date.now() - 3600 * 1000).toISOString();
  try {
    const [page, stats] = await Promise.all([
      api("v1/events", new URLSearchParams([...params, ["order", "desc"], ["limit", PAGE]])),
      api("v1/stats", new URLSearchParams([...params, ["since", since], ["bucket", "hour"]])),
    ]);
    if (mine !== generation) return; // filters changed meanwhile: the newer refresh draws and polls
    if (firstLoad || shown.size <= PAGE) olderCursor = page.next_cursor;
    render(page.items, firstLoad);
    $("#older").hidden = olderCursor === null;
    renderCounts(stats);
    keyForm.hidden = true;
    status.classList.remove("error");
    status.textContent = `updated ${new Date().toLocaleTimeString()} · every ${POLL_MS / 1000} s`;
  } catch (error) {
    if (mine !== generation) return;
    status.classList.add("error");
    if (error instanceof NeedsKey) {
      keyForm.hidden = false;
      status.textContent = sessionStorage.getItem(KEY_ITEM) ? `key refused: ${error.message}` : "a read key is needed";
      return; // no polling until a key is given
    }
    status.textContent = `cannot read events: ${error.message}`;
  }
  timer = setTimeout(refresh, POLL_MS);
}

async function loadOlder() {
  if (olderCursor === null) return;
  const params = new URLSearchParams([...filterParams(), ["order", "desc"], ["limit", PAGE], ["cursor", olderCursor]]);
  const page = await api("v1/events", params);
  for (const event of page.items) {
    shown.set(event.event_id, event);
    rows.append(row(event, false));
  }
  olderCursor = page.next_cursor;
  $("#older").hidden = olderCursor === null;
}

let typing = null;
filters.addEventListener("input", () => {
  clearTimeout(typing);
  typing = setTimeout(() => { shown = new Map(); refresh(true); }, 300);
});
filters.addEventListener("reset", () => setTimeout(() => { shown = new Map(); refresh(true); }));
filters.addEventListener("submit", (event) => event.preventDefault());
keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_ITEM, $("#key").value.trim());
  $("#key").value = "";
  refresh(true);
});
$("#older").addEventListener("click", () => loadOlder().catch((error) => { status.textContent = error.message; }));

refresh(true);
