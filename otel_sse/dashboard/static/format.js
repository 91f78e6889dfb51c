// Small pure helpers: times, numbers, Jaeger links, safe text.

const FALLBACK_JAEGER = "http://localhost:16686";

/** The Jaeger base URL the server wrote into the page (http or https only). */
export function jaegerBase(doc) {
  const meta = doc.querySelector('meta[name="otel-sse-jaeger"]');
  const value = meta ? meta.getAttribute("content") || "" : "";
  return /^https?:\/\/[^\s]+$/i.test(value) ? value.replace(/\/+$/, "") : FALLBACK_JAEGER;
}

/** `<jaeger>/trace/<traceId>?uiFind=<spanId>`, or null without a trace id. */
export function jaegerLink(base, traceId, spanId) {
  if (!traceId) return null;
  let url = base + "/trace/" + encodeURIComponent(traceId);
  if (spanId) url += "?uiFind=" + encodeURIComponent(spanId);
  return url;
}

/**
 * Milliseconds since the epoch from an ISO 8601 time; the stream's span times
 * carry microseconds, which Date.parse is not required to read, so the fraction
 * is read here (sub-millisecond precision kept).
 */
export function parseTime(text) {
  if (typeof text !== "string") return null;
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/.exec(text);
  if (!match) {
    const value = Date.parse(text);
    return Number.isNaN(value) ? null : value;
  }
  const whole = Date.parse(match[1] + (match[3] || "Z"));
  if (Number.isNaN(whole)) return null;
  const fraction = match[2] ? Number("0." + match[2]) * 1000 : 0;
  return whole + fraction;
}

/** A duration for people: 850 ms, 3.4 s, 2 m 05 s, 1 h 02 m. */
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
  if (ms < 0) ms = 0;
  if (ms < 1000) return Math.round(ms) + " ms";
  if (ms < 60_000) return (ms / 1000).toFixed(ms < 10_000 ? 2 : 1) + " s";
  const seconds = Math.floor(ms / 1000);
  if (seconds < 3600) {
    return Math.floor(seconds / 60) + " m " + String(seconds % 60).padStart(2, "0") + " s";
  }
  return Math.floor(seconds / 3600) + " h " + String(Math.floor(seconds / 60) % 60).padStart(2, "0") + " m";
}

export function count(value) {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "";
}

export function cost(value) {
  if (!Number.isFinite(value)) return "";
  return "$" + (value < 1 ? value.toFixed(4) : value.toFixed(2));
}

export function bytes(value) {
  if (!Number.isFinite(value)) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return (unit ? value.toFixed(1) : String(Math.round(value))) + " " + units[unit];
}

/** An error field: a string, or an object with a message. */
export function errorText(error) {
  if (error === null || error === undefined) return "";
  if (typeof error === "string") return error;
  if (typeof error === "object" && typeof error.message === "string") return error.message;
  return compact(error, 200);
}

/** Any value as one short line of text. */
export function compact(value, limit = 120) {
  let text;
  if (typeof value === "string") text = value;
  else {
    try { text = JSON.stringify(value); } catch (_) { text = String(value); }
  }
  if (text === undefined) text = "";
  return text.length > limit ? text.slice(0, limit - 1) + "\u2026" : text;
}

/** The time of day of an ISO time, HH:MM:SS. */
export function clock(iso) {
  const ms = parseTime(iso);
  if (ms === null) return "";
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}
