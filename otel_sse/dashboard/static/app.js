// The dashboard: authenticate (when the server wants a token), subscribe, and draw
// what changed once per animation frame.

import { Connection, parseFilters } from "./connection.js";
import { count, jaegerBase } from "./format.js";
import { AgentsPanel, LogPanel, RequestsPanel, TasksPanel } from "./panels.js";
import { Store } from "./store.js";
import { Waterfall } from "./waterfall.js";

const $ = (id) => document.getElementById(id);
const TICK_MS = 250;         // running work (durations, growing bars) is redrawn this often
const FALLBACK_MS = 1000;    // a hidden tab gets no frames: draw anyway, so nothing piles up

const jaeger = jaegerBase(document);
const store = new Store();
const tasks = new TasksPanel($("tasks"), $("tasks-summary"), jaeger);
const agents = new AgentsPanel($("agents"), $("agents-summary"), jaeger);
const requests = new RequestsPanel($("requests"), $("llm-totals"), jaeger);
const waterfall = new Waterfall($("traces"), $("folded"), jaeger);
const log = new LogPanel($("log"), jaeger);
const indicator = $("connection");

let frame = 0;
let fallback = 0;
let ticking = false;

function schedule() {
  if (frame) return;
  frame = requestAnimationFrame(render);
  fallback = setTimeout(render, FALLBACK_MS);
}

function render() {
  cancelAnimationFrame(frame);
  clearTimeout(fallback);
  frame = fallback = 0;
  const dirty = store.takeDirty();
  tasks.update(store, dirty.tasks);
  agents.update(store, dirty.agents);
  requests.update(store, dirty.requests, dirty.totals);
  waterfall.update(store, dirty.traces, dirty.folded);
  if (dirty.log) log.update(store);
  if (ticking) {
    ticking = false;
    tasks.tick(store);
    waterfall.tick(store);
    const streaming = [];
    for (const req of store.requests.values()) if (req.endedMs === null) streaming.push(req.key);
    if (streaming.length) requests.update(store, streaming, false);
  }
}

setInterval(() => { ticking = true; schedule(); }, TICK_MS);

// -- the connection ---------------------------------------------------------------

function showState(state, detail) {
  let text = state;
  if (state === "reconnecting") text = detail ? `reconnecting (${detail})` : "reconnecting…";
  else if (state === "gap") text = `gap: ${detail === null || detail === undefined ? "unknown" : count(detail)} missed`;
  else if (state === "unauthorized") text = "token needed";
  else if (state === "error") text = "error: " + detail;
  indicator.textContent = text;
  indicator.dataset.state = state;
  indicator.className = "state " + state;
}

const connection = new Connection({
  url: "/events",
  onEvent(type, data) { store.apply(type, data); schedule(); },
  onState: showState,
  onUnauthorized() { showTokenForm(""); },
});

function clearAll() {
  store.clear();
  for (const panel of [tasks, agents, requests, waterfall, log]) panel.clear();
  schedule();
}

// -- filters ------------------------------------------------------------------------

const filterInput = $("filter-input");
const filterError = $("filter-error");
filterInput.value = new URLSearchParams(location.search).get("filters") || "";

$("filter-form").addEventListener("submit", (event) => {
  event.preventDefault();
  let filters;
  try {
    filters = parseFilters(filterInput.value);
  } catch (error) {
    filterError.textContent = error.message;
    return;
  }
  filterError.textContent = "";
  filterInput.value = filters;
  const params = new URLSearchParams(location.search);
  if (filters) params.set("filters", filters); else params.delete("filters");
  const query = params.toString();
  history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
  // What is drawn matches the filters: start over from the server's snapshot.
  clearAll();
  connection.start(filters);
});

// -- authentication -------------------------------------------------------------------
// With a token the page is opened as /dashboard#token=...: the fragment never
// leaves the browser. The page takes it out of the address bar and history, and
// exchanges it once (POST /v1/session, Authorization header) for an HttpOnly
// session cookie, which EventSource then sends.

const tokenPanel = $("token-panel");
const tokenInput = $("token-input");
const tokenError = $("token-error");

async function exchange(token) {
  try {
    const answer = await fetch("/v1/session", {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { Authorization: "Bearer " + token },
    });
    return answer.status;
  } catch (_) {
    return 0;
  }
}

function showTokenForm(message) {
  tokenError.textContent = message;
  tokenPanel.hidden = false;
  tokenInput.focus();
}

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (!token) return;
  const status = await exchange(token);
  tokenInput.value = "";
  if (status === 401 || status === 403) { showTokenForm("that token was not accepted"); return; }
  if (status === 0) { showTokenForm("the server cannot be reached"); return; }
  tokenPanel.hidden = true;
  if (connection.lastId) connection.resume(); else connection.start(connection.filters);
});

async function boot() {
  let filters = "";
  try { filters = parseFilters(filterInput.value); } catch (error) { filterError.textContent = error.message; }
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (match) {
    history.replaceState(null, "", location.pathname + location.search);
    const status = await exchange(decodeURIComponent(match[1]));
    if (status === 401 || status === 403) {
      connection.filters = filters;
      showState("unauthorized");
      showTokenForm("the token in the address was not accepted");
      return;
    }
  }
  connection.start(filters);
}

// -- the header's counters ----------------------------------------------------------

const rate = $("rate");
let lastCount = 0;
setInterval(() => {
  const events = connection.received;
  rate.textContent = `${count(events)} events · ${count(events - lastCount)}/s`;
  lastCount = events;
}, 1000);

// Read-only figures for tests and the load benchmark.
window.otelSseDashboard = Object.freeze({
  stats: () => ({
    state: connection.state, lastEventId: connection.lastId, received: connection.received,
    applied: store.counts.events,
    snapshots: store.counts.snapshots, gaps: store.counts.gaps, tasks: store.tasks.size,
    agents: store.agents.size, requests: store.requests.size, traces: store.traces.size,
    folded: store.folded.length, log: store.log.length,
    domNodes: document.getElementsByTagName("*").length,
  }),
});

boot();
