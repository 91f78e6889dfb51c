// The subscription: one EventSource on /events, its state for the indicator, and
// a way back when the browser gives up on it.
//
// EventSource resumes by itself with Last-Event-ID after a network error. It
// gives up for good on an HTTP error (401, 400, a 503 while the server stops);
// then a HEAD request on the same URL tells why, and a new EventSource resumes
// from the last id seen (the `lastEventId` query), so nothing is lost or doubled.

// Named events reach only listeners registered for their name: every type of
// the contract (sections 3-5), the stream's own and the open-work events.
export const EVENT_TYPES = Object.freeze([
  "connected", "snapshot", "stream:gap", "shutdown", "notification",
  "task:created", "task:queued", "task:assigned", "task:started", "task:completed",
  "task:failed", "task:cancelled", "task:progress", "task:intermediate", "task:metrics",
  "agent:spawned", "agent:started", "agent:stopped", "agent:paused", "agent:error",
  "agent:output:stdout", "agent:output:stderr", "agent:log:debug", "agent:log:info",
  "agent:log:warn", "agent:log:error", "agent:log:fatal", "agent:metrics", "agent:health",
  "llm:request:started", "llm:token", "llm:tool:call", "llm:tool:result", "llm:usage",
  "llm:request:completed", "llm:request:error",
  "span:started", "span:ended", "log", "trace:completed", "span:heartbeat", "span:stale",
]);

const FILTER_PATTERN = /^[A-Za-z0-9_.:*\-/]+$/;

/**
 * The filter box's text as the stream's `filters` query: comma-separated
 * patterns of letters, digits and `_ . : * - /`, `*` matching any run of
 * characters (the server's rules). Throws an Error naming a bad pattern.
 */
export function parseFilters(text) {
  const patterns = [];
  for (const item of String(text || "").split(",")) {
    const pattern = item.trim();
    if (!pattern) continue;
    if (pattern.length > 200) throw new Error(`filter "${pattern.slice(0, 40)}…" is longer than 200 characters`);
    if (!FILTER_PATTERN.test(pattern)) {
      throw new Error(`filter "${pattern.slice(0, 60)}" may only hold letters, digits and _ . : * - /`);
    }
    if (!patterns.includes(pattern)) patterns.push(pattern);
  }
  if (patterns.length > 64) throw new Error(`at most 64 filters, got ${patterns.length}`);
  return patterns.join(",");
}

export class Connection {
  /**
   * @param {{url?: string, onEvent: (type: string, data: any) => void,
   *          onState: (state: string, detail: any) => void,
   *          onUnauthorized: () => void}} options
   */
  constructor(options) {
    this.url = options.url || "/events";
    this.onEvent = options.onEvent;
    this.onState = options.onState;
    this.onUnauthorized = options.onUnauthorized;
    this.source = null;
    this.filters = "";
    this.lastId = null;
    this.attempt = 0;
    this.timer = null;
    this.state = "idle";
    this.received = 0;  // events of every subscription so far
  }

  /** Subscribe afresh (no resume point: the server sends a snapshot first). */
  start(filters) {
    this.filters = filters || "";
    this.lastId = null;
    this.attempt = 0;
    this.open();
  }

  /** Subscribe again from the last event seen. */
  resume() {
    this.open();
  }

  streamUrl() {
    const params = new URLSearchParams();
    if (this.filters) params.set("filters", this.filters);
    if (this.lastId) params.set("lastEventId", this.lastId);
    const query = params.toString();
    return this.url + (query ? "?" + query : "");
  }

  open() {
    this.close();
    const source = new EventSource(this.streamUrl());
    this.source = source;
    this.setState(this.lastId ? "reconnecting" : "connecting");
    source.onopen = () => {
      if (source !== this.source) return;
      this.attempt = 0;
      this.setState("live");
    };
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) this.failed(source);
      else this.setState("reconnecting");
    };
    const handler = (event) => this.dispatch(source, event);
    for (const type of EVENT_TYPES) source.addEventListener(type, handler);
    source.onmessage = handler;
  }

  close() {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    if (this.source) { this.source.close(); this.source = null; }
  }

  dispatch(source, event) {
    if (source !== this.source) return;
    this.received += 1;
    if (event.lastEventId) this.lastId = event.lastEventId;
    let data;
    try { data = JSON.parse(event.data); } catch (_) { data = { message: event.data }; }
    if (event.type === "stream:gap") this.setState("gap", data && data.missed);
    else if (event.type === "shutdown") this.setState("reconnecting", "the server is stopping");
    this.onEvent(event.type, data);
  }

  async failed(source) {
    source.close();
    let status = 0;
    try {
      const answer = await fetch(this.streamUrl(), { method: "HEAD", credentials: "same-origin",
                                                     cache: "no-store" });
      status = answer.status;
    } catch (_) { /* the server is not there: retry below */ }
    if (source !== this.source) return;
    this.source = null;
    if (status === 401) {
      this.setState("unauthorized");
      this.onUnauthorized();
      return;
    }
    if (status === 400) {
      this.setState("error", "the server refused these filters");
      return;
    }
    const delay = Math.min(30_000, 500 * 2 ** this.attempt) * (0.8 + 0.4 * Math.random());
    this.attempt += 1;
    this.setState("reconnecting");
    this.timer = setTimeout(() => { this.timer = null; this.open(); }, delay);
  }

  setState(state, detail) {
    this.state = state;
    this.onState(state, detail);
  }
}
