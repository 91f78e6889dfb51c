// The task, agent, LLM request and activity panels. Each keeps one element per
// key and updates only the keys the store marked dirty, once per frame.

import { bytes, clock, compact, cost, count, duration, jaegerLink } from "./format.js";
import { el, jaegerAnchor, setData, setLink, setStateClass, setText } from "./dom.js";
import { totalTokens } from "./store.js";

/** A keyed list of elements in a container, newest first or in arrival order. */
class KeyedList {
  constructor(container, newestFirst) {
    this.container = container;
    this.newestFirst = newestFirst;
    this.nodes = new Map();
  }

  /** The element of `key` (made by `make` and placed the first time). */
  get(key, make) {
    let node = this.nodes.get(key);
    if (!node) {
      node = make();
      this.nodes.set(key, node);
      if (this.newestFirst) this.container.prepend(node);
      else this.container.append(node);
    }
    return node;
  }

  /** Draw the dirty `keys`: each item of `items` (a Map) through `draw(node, item)`;
   *  a key no longer in `items` loses its element. */
  sync(keys, items, make, draw) {
    for (const key of keys) {
      const item = items.get(key);
      if (item) draw(this.get(key, make), item);
      else this.remove(key);
    }
  }

  remove(key) {
    const node = this.nodes.get(key);
    if (node) { node.remove(); this.nodes.delete(key); }
  }

  clear() {
    this.nodes.clear();
    this.container.replaceChildren();
  }
}

const RUNNING_TASK = new Set(["running", "assigned", "queued", "pending"]);

export class TasksPanel {
  constructor(container, summary, jaeger) {
    this.list = new KeyedList(container, true);
    this.summary = summary;
    this.jaeger = jaeger;
  }

  clear() { this.list.clear(); }

  update(store, keys) {
    this.list.sync(keys, store.tasks, () => this.make(), (node, item) => this.draw(node, item, store));
    let running = 0, completed = 0, failed = 0;
    for (const task of store.tasks.values()) {
      if (task.status === "completed") completed += 1;
      else if (task.status === "failed") failed += 1;
      else if (RUNNING_TASK.has(task.status)) running += 1;
    }
    setText(this.summary, `${running} running · ${completed} completed · ${failed} failed`);
  }

  /** Running tasks' durations move with the clock. */
  tick(store) {
    for (const task of store.tasks.values()) {
      if (task.endedMs === null && RUNNING_TASK.has(task.status)) {
        const node = this.list.nodes.get(task.key);
        if (node) setText(node.parts.duration, taskDuration(task, store));
      }
    }
  }

  make() {
    const node = el("li", "task");
    const main = el("div", "task-main");
    const parts = {
      name: el("span", "task-name"), id: el("span", "task-id"), agent: el("span", "task-agent"),
      status: el("span", "badge"), bar: el("div", "progress-bar"), label: el("span", "progress-label"),
      duration: el("span", "duration"), link: jaegerAnchor("task-link", "trace"),
      error: el("div", "task-error"),
    };
    main.append(parts.name, parts.id, parts.agent);
    const progress = el("div", "progress");
    progress.append(parts.bar, parts.label);
    node.append(main, parts.status, progress, parts.duration, parts.link, parts.error);
    node.parts = parts;
    return node;
  }

  draw(node, task, store) {
    const p = node.parts;
    setData(node, "taskId", task.taskId);
    setData(node, "status", task.status);
    setData(node, "traceId", task.traceId);
    setData(node, "spanId", task.spanId);
    setStateClass(node, "status-", task.status);
    node.classList.toggle("failed", task.status === "failed");
    setText(p.name, task.name || task.taskId);
    setText(p.id, task.name ? task.taskId : "");
    setText(p.agent, task.agentId ? "@" + task.agentId : "");
    setText(p.status, task.status);
    const pct = task.percentage === null ? (task.status === "completed" ? 100 : 0) : task.percentage;
    p.bar.style.width = Math.max(0, Math.min(100, pct)) + "%";
    let label = task.percentage === null && task.status !== "completed" ? "" : Math.round(pct) + "%";
    if (task.step) label += " " + task.step;
    if (task.stepNumber !== null && task.totalSteps !== null) label += ` ${task.stepNumber}/${task.totalSteps}`;
    if (task.eta !== null && task.endedMs === null) label += ` · ~${duration(task.eta)} left`;
    setText(p.label, label.trim());
    setText(p.duration, taskDuration(task, store));
    setLink(p.link, jaegerLink(this.jaeger, task.traceId, task.spanId));
    setText(p.error, task.error);
    p.error.hidden = !task.error;
  }
}

function taskDuration(task, store) {
  const start = task.startedMs ?? task.createdMs;
  if (task.metrics && Number.isFinite(task.metrics.executionTime) && task.endedMs !== null) {
    return duration(task.metrics.executionTime);
  }
  if (start === null) return "";
  return duration((task.endedMs ?? store.now()) - start);
}

export class AgentsPanel {
  constructor(container, summary, jaeger) {
    this.list = new KeyedList(container, false);
    this.summary = summary;
    this.jaeger = jaeger;
  }

  clear() { this.list.clear(); }

  update(store, keys) {
    this.list.sync(keys, store.agents, () => this.make(), (node, item) => this.draw(node, item, store));
    let busy = 0;
    for (const agent of store.agents.values()) if (agent.status === "busy") busy += 1;
    setText(this.summary, `${store.agents.size} agents · ${busy} busy`);
  }

  make() {
    const node = el("article", "agent");
    const head = el("header");
    const parts = {
      name: el("span", "agent-name"), id: el("span", "agent-id"), status: el("span", "badge"),
      kind: el("div", "agent-kind"), task: el("div", "agent-task"), health: el("div", "agent-health"),
      metrics: el("div", "agent-metrics"), message: el("div", "agent-message"),
      link: jaegerAnchor("agent-link", "trace"),
    };
    head.append(parts.name, parts.id, parts.status);
    node.append(head, parts.kind, parts.task, parts.health, parts.metrics, parts.message, parts.link);
    node.parts = parts;
    return node;
  }

  draw(node, agent, store) {
    const p = node.parts;
    setData(node, "agentId", agent.agentId);
    setData(node, "status", agent.status);
    setStateClass(node, "status-", agent.status);
    setText(p.name, agent.name || agent.agentId);
    setText(p.id, agent.name ? agent.agentId : "");
    setText(p.status, agent.status);
    setText(p.kind, agent.type ? "type " + agent.type : "");
    let taskText = "";
    if (agent.currentTaskId) {
      taskText = "task " + agent.currentTaskId;
      for (const task of store.tasks.values()) {
        if (task.taskId === agent.currentTaskId && task.agentId === agent.agentId) taskText += ` (${task.status})`;
      }
    }
    setText(p.task, taskText);
    const health = agent.health;
    if (health) {
      const score = Number.isFinite(health.score) ? " · score " + health.score : "";
      const issues = Array.isArray(health.issues) && health.issues.length ? " · " + health.issues.join(", ") : "";
      setText(p.health, (health.healthy ? "healthy" : "unhealthy") + score + issues);
      setStateClass(p.health, "health-", health.healthy ? "ok" : "bad");
    } else {
      setText(p.health, "");
    }
    const m = agent.metrics;
    if (m) {
      const bits = [];
      if (Number.isFinite(m.tasksCompleted)) bits.push(count(m.tasksCompleted) + " done");
      if (Number.isFinite(m.tasksFailed)) bits.push(count(m.tasksFailed) + " failed");
      if (Number.isFinite(m.totalTokens)) bits.push(count(m.totalTokens) + " tok");
      if (Number.isFinite(m.totalCost)) bits.push(cost(m.totalCost));
      if (Number.isFinite(m.cpuUsage)) bits.push("cpu " + m.cpuUsage + "%");
      if (Number.isFinite(m.memoryUsage)) bits.push("mem " + bytes(m.memoryUsage));
      if (Number.isFinite(m.avgExecutionTime)) bits.push("avg " + duration(m.avgExecutionTime));
      setText(p.metrics, bits.join(" · "));
    } else {
      setText(p.metrics, "");
    }
    setText(p.message, agent.error || agent.message);
    setStateClass(p.message, "level-", agent.error ? "error" : agent.messageLevel || "info");
    setLink(p.link, jaegerLink(this.jaeger, agent.traceId, agent.spanId));
  }
}

export class RequestsPanel {
  constructor(container, totals, jaeger) {
    this.list = new KeyedList(container, true);
    this.totals = totals;
    this.jaeger = jaeger;
  }

  clear() { this.list.clear(); }

  update(store, keys, totalsDirty) {
    this.list.sync(keys, store.requests, () => this.make(), (node, item) => this.draw(node, item, store));
    if (totalsDirty) {
      const t = store.totals();
      setText(this.totals, `${count(t.requests)} with usage · ${count(t.promptTokens)} in · ` +
              `${count(t.completionTokens)} out · ${count(t.totalTokens)} tokens` +
              (t.cost > 0 ? " · " + cost(t.cost) : ""));
    }
  }

  make() {
    const node = el("article", "request");
    const head = el("header");
    const parts = {
      model: el("span", "request-model"), id: el("span", "request-id"), status: el("span", "badge"),
      link: jaegerAnchor("request-link", "trace"), meta: el("div", "request-meta"),
      text: el("pre", "request-text"), tools: el("ul", "tools"), usage: el("div", "usage"),
      error: el("div", "request-error"),
    };
    parts.textNode = document.createTextNode("");
    parts.text.append(parts.textNode);
    head.append(parts.model, parts.id, parts.status, parts.link);
    node.append(head, parts.meta, parts.text, parts.tools, parts.usage, parts.error);
    node.parts = parts;
    return node;
  }

  draw(node, req, store) {
    const p = node.parts;
    setData(node, "requestId", req.requestId);
    setData(node, "status", req.status);
    setData(node, "traceId", req.traceId);
    setData(node, "spanId", req.spanId);
    setStateClass(node, "status-", req.status);
    setText(p.model, [req.provider, req.model].filter(Boolean).join(" · "));
    setText(p.id, req.requestId);
    setText(p.status, req.status);
    setLink(p.link, jaegerLink(this.jaeger, req.traceId, req.spanId));
    const meta = [];
    if (req.agentId) meta.push("@" + req.agentId);
    if (req.taskId) meta.push(req.taskId);
    if (req.firstTokenMs !== null && req.startedMs !== null) meta.push("TTFT " + duration(req.firstTokenMs - req.startedMs));
    if (req.duration !== null) meta.push(duration(req.duration));
    else if (req.startedMs !== null && req.endedMs === null) meta.push(duration(store.now() - req.startedMs));
    if (req.tokens) meta.push(count(req.tokens) + (req.tokens === 1 ? " token" : " tokens") + " streamed");
    if (req.finishReason) meta.push("finish: " + req.finishReason);
    setText(p.meta, meta.join(" · "));
    // The text grows at its end: append what is new rather than rewrite it all.
    const shown = p.textNode.data;
    const text = (req.partial ? "\u2026" : "") + req.text + (req.truncated ? " \u2026 (truncated)" : "");
    if (text.length > shown.length && text.startsWith(shown)) p.textNode.appendData(text.slice(shown.length));
    else if (text !== shown) p.textNode.data = text;
    p.text.hidden = !text;
    this.drawTools(p.tools, req);
    const usage = req.usage;
    if (usage) {
      setText(p.usage, `${count(usage.promptTokens)} in · ${count(usage.completionTokens)} out · ` +
              `${count(totalTokens(usage))} total` + (Number.isFinite(usage.cost) ? " · " + cost(usage.cost) : ""));
    }
    p.usage.hidden = !usage;
    setText(p.error, req.error);
    p.error.hidden = !req.error;
  }

  drawTools(list, req) {
    if (!list.items) list.items = new Map();
    for (const tool of req.tools.values()) {
      let item = list.items.get(tool.id);
      if (!item) {
        item = el("li", "tool");
        item.parts = { call: el("span", "tool-call"), result: el("span", "tool-result"),
                       link: jaegerAnchor("tool-link", "span") };
        item.append(item.parts.call, item.parts.result, item.parts.link);
        list.items.set(tool.id, item);
        list.append(item);
      }
      setData(item, "toolCallId", tool.id);
      setText(item.parts.call, `${tool.name || "tool"}(${compact(tool.args, 80)})`);
      let result = "";
      if (tool.error) result = " \u2192 error: " + tool.error;
      else if (tool.result !== undefined) result = " \u2192 " + compact(tool.result, 100);
      else if (tool.complete) result = " \u2026";
      if (tool.executionTime !== null) result += " · " + duration(tool.executionTime);
      setText(item.parts.result, result);
      item.classList.toggle("tool-error", Boolean(tool.error));
      setLink(item.parts.link, jaegerLink(this.jaeger, req.traceId, tool.spanId));
    }
  }
}

export class LogPanel {
  constructor(container, jaeger) {
    this.container = container;
    this.jaeger = jaeger;
    this.shown = 0; // the order of the newest line drawn
  }

  clear() { this.container.replaceChildren(); this.shown = 0; }

  update(store) {
    const fresh = [];
    for (let i = store.log.length - 1; i >= 0 && store.log[i].order > this.shown; i -= 1) fresh.push(store.log[i]);
    if (!fresh.length) return;
    this.shown = fresh[0].order;
    const nodes = fresh.map((line) => this.make(line));
    this.container.prepend(...nodes);
    while (this.container.childElementCount > store.limits.log) this.container.lastElementChild.remove();
  }

  make(line) {
    const node = el("li", "line level-" + line.level);
    const time = el("time", "", clock(line.timestamp));
    const source = el("span", "source", line.source);
    const kind = el("span", "kind", line.kind);
    const text = el("span", "message", line.text);
    node.append(time, kind, source, text);
    const href = jaegerLink(this.jaeger, line.traceId, line.spanId);
    if (href) {
      const link = jaegerAnchor("log-link", "span");
      setLink(link, href);
      node.append(link);
    }
    return node;
  }
}
