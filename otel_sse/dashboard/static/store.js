// The dashboard's state, built from stream events, with no DOM in it.
//
// Everything is keyed by ids (tasks and LLM requests by trace and id, agents by
// id, spans by span id), so an event seen twice (a snapshot, then the same
// span's events replayed after a stream gap) changes nothing the second time.
// Every collection is capped: finished work is dropped or folded first.
// What changed since the last frame is collected in `dirty` for the renderer.

import { errorText, parseTime } from "./format.js";

export const LIMITS = Object.freeze({
  tasks: 200,           // task rows (finished ones are dropped first)
  agents: 100,
  requests: 30,         // LLM request cards
  textChars: 32_768,    // response text kept per request
  tools: 40,            // tool calls per request
  traces: 40,           // traces drawn in the waterfall
  expandedDone: 4,      // finished traces kept drawn; older ones fold into one line each
  spans: 300,           // spans per trace
  folded: 200,          // folded trace lines
  log: 200,             // activity lines
  finishedIds: 4000,    // traces remembered as finished (late events for them are ignored)
  usageKeys: 4000,      // requests whose usage is counted by key (older ones fold into a sum)
});

const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const REQUEST_DONE = new Set(["completed", "error"]);

/** An insertion-ordered set that forgets its oldest entries past `limit`. */
class CappedSet {
  constructor(limit) { this.limit = limit; this.items = new Set(); }
  add(value) {
    this.items.delete(value);
    this.items.add(value);
    if (this.items.size > this.limit) this.items.delete(this.items.values().next().value);
  }
  has(value) { return this.items.has(value); }
  clear() { this.items.clear(); }
}

function keyOf(data, id) {
  return (typeof data.traceId === "string" ? data.traceId : "") + "|" + id;
}

function emptyDirty() {
  return { tasks: new Set(), agents: new Set(), requests: new Set(), traces: new Set(),
           log: false, totals: false, folded: false };
}

export class Store {
  constructor(limits = LIMITS) {
    this.limits = limits;
    this.clockOffset = 0;      // server time minus this page's time (ms)
    this.order = 0;
    this.clear();
  }

  /** Forget everything (a new subscription with other filters). */
  clear() {
    this.tasks = new Map();
    this.agents = new Map();
    this.requests = new Map();
    this.traces = new Map();
    this.folded = [];
    this.log = [];
    this.finished = new CappedSet(this.limits.finishedIds);
    this.usage = new Map();    // request key -> usage, counted once however often it is seen
    this.usageBase = { promptTokens: 0, completionTokens: 0, totalTokens: 0, cost: 0, requests: 0 };
    this.beatInterval = null;  // ms between span:heartbeat events, once two were seen
    this.lastBeat = null;
    this.counts = { events: 0, snapshots: 0, gaps: 0, missed: 0 };
    this.dirty = emptyDirty();
    this.dirty.log = this.dirty.totals = this.dirty.folded = true;
  }

  /** The dirty sets since the last call, and fresh ones for what comes next. */
  takeDirty() {
    const dirty = this.dirty;
    this.dirty = emptyDirty();
    return dirty;
  }

  /** The server's clock, as far as the `connected` event told it. */
  now() { return Date.now() + this.clockOffset; }

  // -- events ------------------------------------------------------------------

  /** Apply one event of the stream. */
  apply(type, data) {
    if (data === null || typeof data !== "object") return;
    this.counts.events += 1;
    if (type.startsWith("task:")) this.onTask(type, data);
    else if (type.startsWith("agent:")) this.onAgent(type, data);
    else if (type.startsWith("llm:")) this.onLlm(type, data);
    else if (type.startsWith("span:") || type === "trace:completed") this.onSpan(type, data);
    else if (type === "connected") this.onConnected(data);
    else if (type === "snapshot") this.onSnapshot(data);
    else if (type === "stream:gap") this.onGap(data);
    else if (type === "log") this.addLog("log", data.serviceName || "", level(data.severity), messageOf(data.body), data);
    else if (type === "shutdown") this.addLog("stream", "server", "warn", "the server is stopping", data);
    else this.addLog(type, "", "info", compactData(data), data);
  }

  onConnected(data) {
    const server = parseTime(data.serverTime);
    if (server !== null) this.clockOffset = server - Date.now();
  }

  /** The open work at connect time: its events, in the order they happened. */
  onSnapshot(data) {
    this.counts.snapshots += 1;
    const events = Array.isArray(data.events) ? data.events : [];
    for (const item of events) {
      if (item && typeof item.event === "string") this.apply(item.event, item.data);
    }
  }

  onGap(data) {
    this.counts.gaps += 1;
    if (Number.isFinite(data.missed)) this.counts.missed += data.missed;
    const missed = data.missed === null || data.missed === undefined ? "an unknown number of" : data.missed;
    this.addLog("stream", "server", "warn", `stream gap: ${missed} events missed`, data);
  }

  // -- tasks -------------------------------------------------------------------

  onTask(type, data) {
    if (typeof data.taskId !== "string") return;
    const key = keyOf(data, data.taskId);
    let task = this.tasks.get(key);
    if (!task) {
      task = { key, taskId: data.taskId, order: ++this.order, status: "pending", percentage: null,
               step: "", stepNumber: null, totalSteps: null, eta: null, createdMs: null,
               startedMs: null, endedMs: null, error: "", metrics: null, name: "", type: "",
               priority: "", agentId: "", traceId: null, spanId: null };
      this.tasks.set(key, task);
      this.capTasks();
    }
    const at = parseTime(data.timestamp);
    for (const field of ["name", "type", "agentId"]) {
      if (typeof data[field] === "string" && data[field]) task[field] = data[field];
    }
    if (data.priority !== undefined && data.priority !== null) task.priority = String(data.priority);
    if (typeof data.traceId === "string") { task.traceId = data.traceId; task.spanId = data.spanId || task.spanId; }
    if (task.createdMs === null) task.createdMs = at;
    const progress = data.progress;
    if (progress && typeof progress === "object") {
      if (Number.isFinite(progress.percentage)) task.percentage = progress.percentage;
      if (typeof progress.currentStep === "string") task.step = progress.currentStep;
      if (Number.isFinite(progress.currentStepNumber)) task.stepNumber = progress.currentStepNumber;
      if (Number.isFinite(progress.totalSteps)) task.totalSteps = progress.totalSteps;
      task.eta = Number.isFinite(progress.estimatedTimeRemaining) ? progress.estimatedTimeRemaining : null;
    } else if (Number.isFinite(progress)) {
      task.percentage = progress;
    }
    if (data.metrics && typeof data.metrics === "object") task.metrics = { ...task.metrics, ...data.metrics };
    const status = typeof data.status === "string" ? data.status : null;
    // A throttled progress update may arrive after the task ended: it never reopens it.
    if (status && !(TERMINAL.has(task.status) && !TERMINAL.has(status))) task.status = status;
    if (type === "task:started" && task.startedMs === null) task.startedMs = at;
    if (TERMINAL.has(task.status) && type !== "task:progress" && type !== "task:metrics") {
      if (task.endedMs === null) task.endedMs = at;
      if (task.status === "completed" && task.percentage !== null) task.percentage = 100;
    }
    if (data.error !== undefined && data.error !== null) task.error = errorText(data.error);
    if (type === "task:intermediate") {
      this.addLog("task", task.taskId, "info", `${data.type || "partial"} #${data.sequence ?? "?"}: ` +
                  compactData(data.data), data);
    }
    if (type === "task:failed") this.addLog("task", task.taskId, "error", `failed: ${task.error}`, data);
    this.dirty.tasks.add(key);
    // The agent card shows its current task's status.
    const agent = task.agentId ? this.agents.get(task.agentId) : undefined;
    if (agent && agent.currentTaskId === task.taskId) this.dirty.agents.add(agent.agentId);
  }

  capTasks() {
    evict(this.tasks, this.limits.tasks, (task) => TERMINAL.has(task.status), this.dirty.tasks);
  }

  // -- agents ------------------------------------------------------------------

  onAgent(type, data) {
    if (typeof data.agentId !== "string") return;
    const id = data.agentId;
    let agent = this.agents.get(id);
    if (!agent) {
      agent = { key: id, agentId: id, order: ++this.order, name: "", type: "", status: "idle",
                currentTaskId: null, health: null, metrics: null, error: "", message: "",
                messageLevel: "", traceId: null, spanId: null };
      this.agents.set(id, agent);
      if (this.agents.size > this.limits.agents) {
        const oldest = this.agents.keys().next().value;
        this.agents.delete(oldest);
        this.dirty.agents.add(oldest);
      }
    }
    if (typeof data.name === "string" && data.name) agent.name = data.name;
    if (typeof data.type === "string" && data.type && !type.startsWith("agent:output")) agent.type = data.type;
    if (typeof data.status === "string") agent.status = data.status;
    if (typeof data.currentTaskId === "string") agent.currentTaskId = data.currentTaskId;
    if (data.health && typeof data.health === "object") agent.health = data.health;
    if (data.metrics && typeof data.metrics === "object") agent.metrics = { ...agent.metrics, ...data.metrics };
    if (typeof data.traceId === "string" && (type === "agent:started" || type === "agent:spawned" || !agent.traceId)) {
      agent.traceId = data.traceId;
      agent.spanId = data.spanId || null;
    }
    if (type === "agent:error") {
      agent.error = errorText(data.error);
      this.addLog("agent", id, "error", agent.error, data);
    } else if (type.startsWith("agent:log:")) {
      agent.message = String(data.message ?? "");
      agent.messageLevel = data.level || type.slice("agent:log:".length);
      this.addLog("agent", id, agent.messageLevel, agent.message, data);
    } else if (type.startsWith("agent:output:")) {
      agent.message = String(data.data ?? "");
      agent.messageLevel = data.stream === "stderr" ? "warn" : "info";
      this.addLog(data.stream || "output", id, agent.messageLevel, agent.message, data);
    }
    this.dirty.agents.add(id);
  }

  // -- LLM requests ------------------------------------------------------------

  onLlm(type, data) {
    if (typeof data.requestId !== "string") return;
    const key = keyOf(data, data.requestId);
    let req = this.requests.get(key);
    if (!req) {
      req = { key, requestId: data.requestId, order: ++this.order, provider: "", model: "",
              agentId: "", taskId: "", status: "streaming", startedMs: null, firstTokenMs: null,
              endedMs: null, text: "", next: 0, shadow: null, partial: false, truncated: false,
              finishReason: null, tools: new Map(), usage: null, duration: null, error: "",
              traceId: null, spanId: null, tokens: 0 };
      this.requests.set(key, req);
      this.capRequests();
    }
    for (const field of ["provider", "model", "agentId", "taskId"]) {
      if (typeof data[field] === "string" && data[field]) req[field] = data[field];
    }
    const at = parseTime(data.timestamp);
    const isTool = type === "llm:tool:call" || type === "llm:tool:result";
    if (typeof data.traceId === "string") {
      req.traceId = data.traceId;
      // Tool events belong to the tool's span, a child of the request's.
      const spanId = isTool ? data.parentSpanId : data.spanId;
      if (typeof spanId === "string" && (!req.spanId || !isTool)) req.spanId = spanId;
    }
    switch (type) {
      case "llm:request:started":
        if (req.startedMs === null) req.startedMs = at;
        break;
      case "llm:token":
        this.onToken(req, data, at);
        break;
      case "llm:text":
        this.onText(req, data);
        break;
      case "llm:tool:call":
      case "llm:tool:result":
        this.onTool(req, type, data);
        break;
      case "llm:usage":
        this.setUsage(req, data.usage);
        break;
      case "llm:request:completed":
        req.status = "completed";
        if (req.endedMs === null) req.endedMs = at;
        if (Number.isFinite(data.duration)) req.duration = data.duration;
        this.setUsage(req, data.usage);
        // The full response is the authority on the text (tokens may have been missed).
        if (typeof data.response === "string" && data.response.length >= req.text.length) {
          req.text = data.response.slice(0, this.limits.textChars);
          req.truncated = data.response.length > this.limits.textChars;
          req.partial = false;
        }
        break;
      case "llm:request:error":
        req.status = "error";
        if (req.endedMs === null) req.endedMs = at;
        req.error = errorText(data.error) + (data.errorType ? ` (${data.errorType})` : "");
        this.addLog("llm", req.requestId, "error", req.error, data);
        break;
      default:
        break;
    }
    this.dirty.requests.add(key);
  }

  /**
   * Tokens in index order; one already applied is skipped. After a snapshot's
   * text (whose token count is not told) the first token names where it
   * continues; a replay from index 0 (after a stream gap) rebuilds the text
   * aside and takes over once it has caught up.
   */
  onToken(req, data, at) {
    const token = typeof data.token === "string" ? data.token : "";
    const index = Number.isInteger(data.index) ? data.index : null;
    if (typeof data.finishReason === "string") req.finishReason = data.finishReason;
    if (index === 0 && req.firstTokenMs === null) req.firstTokenMs = at;
    if (index === null) { this.appendText(req, token); return; }
    if (req.next === null) {
      if (index === 0 || req.shadow) {
        const shadow = req.shadow || (req.shadow = { text: "", next: 0 });
        if (index === shadow.next) { shadow.text += token; shadow.next += 1; }
        if (shadow.text.length >= req.text.length) {
          req.text = shadow.text.slice(0, this.limits.textChars);
          req.next = shadow.next;
          req.shadow = null;
        }
        return;
      }
      req.next = index;
    }
    if (index < req.next) return;            // seen already
    if (index > req.next) req.partial = true; // some were missed (filters, trimmed history)
    if (req.tokens === 0 && index > 0 && req.text === "") req.partial = true;
    req.next = index + 1;
    this.appendText(req, token);
  }

  appendText(req, token) {
    req.tokens += 1;
    if (req.text.length >= this.limits.textChars) { req.truncated = true; return; }
    req.text += token;
    if (req.text.length > this.limits.textChars) {
      req.text = req.text.slice(0, this.limits.textChars);
      req.truncated = true;
    }
  }

  /** A snapshot's `llm:text`: the running request's text so far. */
  onText(req, data) {
    const text = typeof data.text === "string" ? data.text : "";
    if (req.next !== null && req.text.length >= text.length) return; // we know as much already
    req.text = text.slice(0, this.limits.textChars);
    req.truncated = Boolean(data.truncated) || text.length > this.limits.textChars;
    req.next = null;
    req.shadow = null;
  }

  onTool(req, type, data) {
    if (typeof data.toolCallId !== "string") return;
    let tool = req.tools.get(data.toolCallId);
    if (!tool) {
      if (req.tools.size >= this.limits.tools) return;
      tool = { id: data.toolCallId, name: "", args: "", complete: false, result: undefined,
               executionTime: null, error: "", spanId: null };
      req.tools.set(data.toolCallId, tool);
    }
    if (typeof data.toolName === "string") tool.name = data.toolName;
    if (typeof data.spanId === "string") tool.spanId = data.spanId;
    if (type === "llm:tool:call") {
      tool.args = data.arguments;
      tool.complete = Boolean(data.isComplete);
    } else {
      tool.result = data.result;
      if (Number.isFinite(data.executionTime)) tool.executionTime = data.executionTime;
      if (data.error !== undefined && data.error !== null) tool.error = errorText(data.error);
    }
  }

  setUsage(req, usage) {
    if (!usage || typeof usage !== "object") return;
    req.usage = usage;
    this.usage.delete(req.key);
    this.usage.set(req.key, usage);
    if (this.usage.size > this.limits.usageKeys) {
      const [oldKey, old] = this.usage.entries().next().value;
      this.usage.delete(oldKey);
      addUsage(this.usageBase, old);
    }
    this.dirty.totals = true;
  }

  /** Token and cost totals over every request seen (each counted once). */
  totals() {
    const sum = { ...this.usageBase };
    for (const usage of this.usage.values()) addUsage(sum, usage);
    return sum;
  }

  capRequests() {
    evict(this.requests, this.limits.requests, (req) => REQUEST_DONE.has(req.status),
          this.dirty.requests);
  }

  // -- traces and spans ----------------------------------------------------------

  trace(traceId) {
    let trace = this.traces.get(traceId);
    if (!trace) {
      trace = { traceId, order: ++this.order, spans: new Map(), rootSpanId: null, name: "",
                serviceName: "", completed: null, errors: 0, dropped: 0, stale: 0 };
      this.traces.set(traceId, trace);
      this.capTraces();
    }
    return trace;
  }

  onSpan(type, data) {
    if (type === "span:heartbeat") { this.onHeartbeat(data); return; }
    const traceId = data.traceId;
    if (typeof traceId !== "string") return;
    if (this.finished.has(traceId) && !this.traces.has(traceId)) return; // folded already
    if (type === "trace:completed") { this.onTraceCompleted(data); return; }
    const spanId = data.spanId;
    if (typeof spanId !== "string") return;
    const trace = this.trace(traceId);
    let span = trace.spans.get(spanId);
    if (!span) {
      if (trace.spans.size >= this.limits.spans) { trace.dropped += 1; this.dirty.traces.add(traceId); return; }
      span = { spanId, parentSpanId: null, name: "", kind: "", serviceName: "", startMs: null,
               endMs: null, running: true, status: "unset", statusMessage: "", stale: "",
               seenAt: Date.now(), placeholder: false, order: ++this.order };
      trace.spans.set(spanId, span);
    }
    if (typeof data.name === "string") span.name = data.name;
    if (typeof data.kind === "string") span.kind = data.kind;
    if (typeof data.serviceName === "string") span.serviceName = data.serviceName;
    if (data.parentSpanId !== undefined) span.parentSpanId = data.parentSpanId || null;
    const start = parseTime(data.startTime);
    if (start !== null) span.startMs = start;
    span.placeholder = false;
    if (span.parentSpanId === null) {
      trace.rootSpanId = spanId;
      trace.name = span.name;
      trace.serviceName = span.serviceName;
    }
    if (type === "span:ended") {
      const end = parseTime(data.endTime);
      span.endMs = end !== null ? end : this.now();
      if (span.startMs === null && Number.isFinite(data.durationMs)) span.startMs = span.endMs - data.durationMs;
      span.running = false;
      span.status = typeof data.status === "string" ? data.status : "unset";
      span.statusMessage = typeof data.statusMessage === "string" ? data.statusMessage : "";
      if (span.status === "error" && !span.counted) { span.counted = true; trace.errors += 1; }
    } else if (type === "span:stale") {
      if (span.running) {
        span.running = false;
        span.endMs = this.now();
        span.stale = typeof data.reason === "string" ? data.reason : "stale";
        trace.stale += 1;
        this.addLog("span", span.name || spanId, "warn", `stale: ${span.stale}`, data);
      }
    } else if (span.startMs === null) {
      span.startMs = this.now();
    }
    span.seenAt = Date.now();
    this.dirty.traces.add(traceId);
  }

  onTraceCompleted(data) {
    if (!this.traces.has(data.traceId)) {
      // A run this page saw none of: one folded line says it finished.
      this.fold({ traceId: data.traceId, completed: data, spans: new Map(), rootSpanId: null,
                  name: "", serviceName: "", errors: 0 });
      return;
    }
    const trace = this.traces.get(data.traceId);
    trace.completed = data;
    if (typeof data.rootSpanId === "string") trace.rootSpanId = data.rootSpanId;
    if (!trace.name && typeof data.name === "string") trace.name = data.name;
    if (!trace.serviceName && typeof data.serviceName === "string") trace.serviceName = data.serviceName;
    // Still-open spans of a finished trace are drawn as ended with it.
    trace.doneAt = Date.now();
    this.finished.add(data.traceId);
    this.dirty.traces.add(data.traceId);
    this.foldFinished();
  }

  /** Spans open longer than the server's interval: they are alive. */
  onHeartbeat(data) {
    const now = Date.now();
    if (this.lastBeat !== null) {
      const interval = now - this.lastBeat;
      if (interval > 200) this.beatInterval = this.beatInterval === null ? interval : Math.min(this.beatInterval * 1.5, interval);
    }
    this.lastBeat = now;
    const spans = Array.isArray(data.spans) ? data.spans : [];
    for (const beat of spans) {
      if (!beat || typeof beat.traceId !== "string" || typeof beat.spanId !== "string") continue;
      if (this.finished.has(beat.traceId)) continue;
      const trace = this.trace(beat.traceId);
      let span = trace.spans.get(beat.spanId);
      if (!span) {
        if (trace.spans.size >= this.limits.spans) continue;
        // Opened before this page knew of it: drawn from what the heartbeat says.
        span = { spanId: beat.spanId, parentSpanId: null, name: beat.name || "", kind: "",
                 serviceName: "", startMs: this.now() - (beat.elapsedMs || 0), endMs: null,
                 running: true, status: "unset", statusMessage: "", stale: "", seenAt: now,
                 placeholder: true, order: ++this.order };
        trace.spans.set(beat.spanId, span);
        if (!trace.name) trace.name = span.name;
      }
      if (span.running) {
        span.seenAt = now;
        span.beats = (span.beats || 0) + 1;
      }
      this.dirty.traces.add(beat.traceId);
    }
  }

  /** How long a running span may go without a sign of life before it is drawn as quiet. */
  quietAfter() {
    return this.beatInterval === null ? 45_000 : Math.max(2.5 * this.beatInterval, 2_000);
  }

  /** Keep `expandedDone` finished traces drawn; fold older ones into a line each. */
  foldFinished() {
    let done = 0;
    for (const trace of this.traces.values()) if (trace.completed) done += 1;
    if (done <= this.limits.expandedDone) return;
    for (const trace of [...this.traces.values()]) {
      if (done <= this.limits.expandedDone) break;
      if (!trace.completed) continue;
      this.fold(trace);
      done -= 1;
    }
  }

  capTraces() {
    while (this.traces.size > this.limits.traces) {
      let victim = null;
      for (const trace of this.traces.values()) {
        if (trace.completed) { victim = trace; break; }
      }
      this.fold(victim || this.traces.values().next().value);
    }
  }

  fold(trace) {
    const done = trace.completed || {};
    const root = trace.rootSpanId ? trace.spans.get(trace.rootSpanId) : null;
    this.traces.delete(trace.traceId);
    this.finished.add(trace.traceId);
    this.dirty.traces.add(trace.traceId);
    if (this.folded.length && this.folded.some((line) => line.traceId === trace.traceId)) {
      this.folded = this.folded.filter((line) => line.traceId !== trace.traceId);
    }
    this.folded.unshift({
      traceId: trace.traceId, rootSpanId: done.rootSpanId || trace.rootSpanId,
      name: done.name || trace.name, serviceName: done.serviceName || trace.serviceName,
      durationMs: Number.isFinite(done.durationMs) ? done.durationMs
        : root && root.endMs !== null && root.startMs !== null ? root.endMs - root.startMs : null,
      spanCount: Number.isFinite(done.spanCount) ? done.spanCount : trace.spans.size,
      errorCount: Number.isFinite(done.errorCount) ? done.errorCount : trace.errors,
      status: trace.completed ? (done.errorCount > 0 || done.status === "error" ? "error" : "ok")
        : "dropped",
      order: ++this.order,
    });
    if (this.folded.length > this.limits.folded) this.folded.length = this.limits.folded;
    this.dirty.folded = true;
  }

  // -- the activity log ----------------------------------------------------------

  addLog(kind, source, level, text, data) {
    this.log.push({ order: ++this.order, kind, source, level: level || "info", text: String(text),
                    timestamp: data && data.timestamp, traceId: data && data.traceId,
                    spanId: data && data.spanId });
    if (this.log.length > this.limits.log) this.log.splice(0, this.log.length - this.limits.log);
    this.dirty.log = true;
  }
}

/** Down to `limit` entries: the oldest finished ones go first, then the oldest. */
function evict(map, limit, finished, removed) {
  while (map.size > limit) {
    let victim = null;
    for (const [key, item] of map) {
      if (finished(item)) { victim = key; break; }
    }
    if (victim === null) victim = map.keys().next().value;
    map.delete(victim);
    removed.add(victim);
  }
}

function addUsage(sum, usage) {
  sum.requests += 1;
  for (const field of ["promptTokens", "completionTokens", "cost"]) {
    if (Number.isFinite(usage[field])) sum[field] += usage[field];
  }
  sum.totalTokens += totalTokens(usage);
}

/** A usage's total, or its prompt and completion tokens when it gives none. */
export function totalTokens(usage) {
  if (Number.isFinite(usage.totalTokens)) return usage.totalTokens;
  return (Number.isFinite(usage.promptTokens) ? usage.promptTokens : 0) +
    (Number.isFinite(usage.completionTokens) ? usage.completionTokens : 0);
}

/** A log record's severity as one of the page's levels (WARNING -> warn, CRITICAL -> fatal). */
function level(severity) {
  const text = String(severity || "").toLowerCase();
  if (text.startsWith("warn")) return "warn";
  if (text.startsWith("err")) return "error";
  if (text.startsWith("fatal") || text.startsWith("crit")) return "fatal";
  if (text.startsWith("debug") || text.startsWith("trace")) return "debug";
  return "info";
}

function messageOf(body) {
  if (typeof body === "string") return body;
  return compactData(body);
}

function compactData(value) {
  let text;
  try { text = JSON.stringify(value); } catch (_) { text = String(value); }
  if (text === undefined) return "";
  return text.length > 300 ? text.slice(0, 299) + "\u2026" : text;
}
