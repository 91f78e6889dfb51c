// The live trace waterfall: one block per trace, its spans nested by
// parentSpanId, bars on the trace's own time scale. Running spans reach "now"
// and grow; finished traces fold into one line each (the store decides when).

import { duration, jaegerLink } from "./format.js";
import { el, jaegerAnchor, setData, setLink, setStateClass, setText } from "./dom.js";

/** The spans of a trace in tree order, each with its depth. */
export function treeOrder(spans) {
  const children = new Map();
  const roots = [];
  const byStart = (a, b) => (a.startMs ?? Infinity) - (b.startMs ?? Infinity) || a.order - b.order;
  for (const span of spans.values()) {
    const parent = span.parentSpanId;
    if (parent && spans.has(parent) && parent !== span.spanId) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(span);
    } else {
      roots.push(span);
    }
  }
  const out = [];
  const seen = new Set();
  const visit = (span, depth) => {
    if (seen.has(span.spanId)) return;
    seen.add(span.spanId);
    out.push([span, depth]);
    const kids = children.get(span.spanId);
    if (kids) for (const kid of kids.sort(byStart)) visit(kid, depth + 1);
  };
  for (const root of roots.sort(byStart)) visit(root, 0);
  // A cycle of parents (bad input) leaves spans unvisited: draw them flat.
  for (const span of spans.values()) if (!seen.has(span.spanId)) out.push([span, 0]);
  return out;
}

export class Waterfall {
  constructor(container, foldedList, jaeger) {
    this.container = container;
    this.foldedList = foldedList;
    this.jaeger = jaeger;
    this.blocks = new Map();
    this.foldedNodes = new Map();
  }

  clear() {
    this.blocks.clear();
    this.foldedNodes.clear();
    this.container.replaceChildren();
    this.foldedList.replaceChildren();
  }

  update(store, traceIds, foldedDirty) {
    for (const traceId of traceIds) {
      const trace = store.traces.get(traceId);
      if (!trace) {
        const block = this.blocks.get(traceId);
        if (block) { block.remove(); this.blocks.delete(traceId); }
        continue;
      }
      let block = this.blocks.get(traceId);
      if (!block) {
        block = this.make();
        this.blocks.set(traceId, block);
        this.container.prepend(block);
      }
      this.draw(block, trace, store);
    }
    if (foldedDirty) this.drawFolded(store);
  }

  /** Traces with running spans move with the clock. */
  tick(store) {
    for (const trace of store.traces.values()) {
      if (!trace.completed || trace.running) {
        const block = this.blocks.get(trace.traceId);
        if (block) this.draw(block, trace, store);
      }
    }
  }

  make() {
    const block = el("section", "trace");
    const head = el("header", "trace-head");
    const parts = {
      name: el("span", "trace-name"), service: el("span", "trace-service"),
      status: el("span", "badge"), meta: el("span", "trace-meta"),
      link: jaegerAnchor("trace-link", "Jaeger"), spans: el("ol", "spans"),
    };
    head.append(parts.name, parts.service, parts.status, parts.meta, parts.link);
    block.append(head, parts.spans);
    block.parts = parts;
    block.rows = new Map();
    return block;
  }

  draw(block, trace, store) {
    const p = block.parts;
    const now = store.now();
    const quietAfter = store.quietAfter();
    const ordered = treeOrder(trace.spans);
    let t0 = Infinity, t1 = -Infinity, running = 0;
    for (const [span] of ordered) {
      if (span.startMs !== null) t0 = Math.min(t0, span.startMs);
      if (span.running) running += 1;
      const end = span.running ? now : span.endMs;
      if (end !== null) t1 = Math.max(t1, end);
    }
    trace.running = running > 0;
    if (!Number.isFinite(t0)) t0 = now;
    if (!(t1 > t0)) t1 = t0 + 1;
    const scale = t1 - t0;
    const done = trace.completed;
    const state = done && !running ? (trace.errors > 0 || done.errorCount > 0 || done.status === "error" ? "error" : "ok")
      : trace.stale && !running ? "stale" : "running";
    setData(block, "traceId", trace.traceId);
    setData(block, "rootSpanId", trace.rootSpanId);
    setData(block, "state", state);
    setStateClass(block, "state-", state);
    setText(p.name, trace.name || trace.traceId.slice(0, 16));
    setText(p.service, trace.serviceName);
    setText(p.status, done ? (state === "error" ? "finished with errors" : "finished") : state);
    const errors = done && Number.isFinite(done.errorCount) ? done.errorCount : trace.errors;
    const spans = done && Number.isFinite(done.spanCount) ? done.spanCount : trace.spans.size;
    const meta = [`${spans} span${spans === 1 ? "" : "s"}`];
    if (errors) meta.push(`${errors} error${errors === 1 ? "" : "s"}`);
    if (trace.stale) meta.push(`${trace.stale} stale`);
    if (trace.dropped) meta.push(`${trace.dropped} not drawn`);
    meta.push(done && Number.isFinite(done.durationMs) ? duration(done.durationMs) : duration(scale));
    setText(p.meta, meta.join(" · "));
    setLink(p.link, jaegerLink(this.jaeger, trace.traceId, trace.rootSpanId));

    const rows = [];
    for (const [span, depth] of ordered) {
      let row = block.rows.get(span.spanId);
      if (!row) { row = this.makeRow(); block.rows.set(span.spanId, row); }
      this.drawRow(row, span, depth, trace, { t0, scale, now, quietAfter });
      rows.push(row);
    }
    for (const [spanId, row] of block.rows) if (!trace.spans.has(spanId)) { row.remove(); block.rows.delete(spanId); }
    // Move rows only when the order changed (a new span, a late parent).
    const current = p.spans.children;
    let same = current.length === rows.length;
    for (let i = 0; same && i < rows.length; i += 1) same = current[i] === rows[i];
    if (!same) p.spans.replaceChildren(...rows);
  }

  makeRow() {
    const row = el("li", "span");
    const label = el("div", "span-label");
    const parts = {
      label,
      link: jaegerAnchor("span-link", ""), duration: el("span", "span-duration"),
      track: el("div", "span-track"), bar: el("div", "span-bar"),
    };
    label.append(parts.link, parts.duration);
    parts.track.append(parts.bar);
    row.append(label, parts.track);
    row.parts = parts;
    return row;
  }

  drawRow(row, span, depth, trace, scale) {
    const p = row.parts;
    const quiet = span.running && Date.now() - span.seenAt > scale.quietAfter;
    const state = span.stale ? "stale" : span.running ? (quiet ? "quiet" : "running")
      : span.status === "error" ? "error" : "ended";
    setData(row, "spanId", span.spanId);
    setData(row, "parentSpanId", span.parentSpanId);
    setData(row, "depth", depth);
    setData(row, "state", state);
    setData(row, "beats", span.beats || 0);
    setStateClass(row, "state-", state);
    if (row.depth !== depth) { p.label.style.setProperty("--depth", String(depth)); row.depth = depth; }
    setText(p.link, span.name || span.spanId);
    setLink(p.link, jaegerLink(this.jaeger, trace.traceId, span.spanId));
    const title = [span.name, span.kind, span.serviceName, span.spanId].filter(Boolean).join(" · ") +
      (span.statusMessage ? "\n" + span.statusMessage : "") + (span.stale ? "\nstale: " + span.stale : "") +
      (quiet ? "\nno sign of life for " + duration(Date.now() - span.seenAt) : "") +
      (span.placeholder ? "\nknown from a heartbeat only" : "");
    if (p.link.title !== title) p.link.title = title;
    const start = span.startMs ?? scale.t0;
    const end = span.running ? scale.now : span.endMs ?? scale.now;
    const label = span.stale ? "stale" : span.running ? duration(end - start) + (quiet ? " (quiet)" : " …")
      : duration(end - start);
    setText(p.duration, label);
    const left = ((start - scale.t0) / scale.scale) * 100;
    const width = Math.max(0.4, ((end - start) / scale.scale) * 100);
    p.bar.style.left = Math.max(0, Math.min(99.6, left)).toFixed(2) + "%";
    p.bar.style.width = Math.min(100 - Math.max(0, left), width).toFixed(2) + "%";
  }

  /** New folded lines go on top; lines trimmed off the end go away. */
  drawFolded(store) {
    const keep = new Set(store.folded.map((line) => line.traceId));
    for (const [traceId, node] of this.foldedNodes) {
      if (!keep.has(traceId)) { node.remove(); this.foldedNodes.delete(traceId); }
    }
    const fresh = [];
    for (const line of store.folded) {
      if (this.foldedNodes.has(line.traceId)) break;
      fresh.push(this.makeFolded(line));
    }
    if (fresh.length) this.foldedList.prepend(...fresh);
    const first = store.folded.length ? this.foldedNodes.get(store.folded[0].traceId) : null;
    if (first && this.foldedList.firstElementChild !== first) {
      // A run folded again (rare): put every line in the store's order.
      this.foldedList.replaceChildren(...store.folded.map((line) => this.foldedNodes.get(line.traceId)));
    }
  }

  makeFolded(line) {
    const node = el("li", "folded status-" + line.status);
    const errors = line.errorCount ? ` · ${line.errorCount} error${line.errorCount === 1 ? "" : "s"}` : "";
    node.append(el("span", "folded-name", line.name || line.traceId.slice(0, 16)),
                el("span", "folded-service", line.serviceName || ""),
                el("span", "folded-meta", `${line.spanCount} span${line.spanCount === 1 ? "" : "s"}${errors}` +
                   (line.durationMs !== null ? " · " + duration(line.durationMs) : "") +
                   (line.status === "dropped" ? " · not drawn (too many traces)" : "")));
    const link = jaegerAnchor("folded-link", "Jaeger");
    setLink(link, jaegerLink(this.jaeger, line.traceId, line.rootSpanId));
    node.append(link);
    setData(node, "traceId", line.traceId);
    this.foldedNodes.set(line.traceId, node);
    return node;
  }
}
