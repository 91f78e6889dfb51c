"use strict";
// Subscribes with EventSource (which resumes with Last-Event-ID by itself) and lists events.
(function () {
  const state = document.getElementById("connection");
  const list = document.getElementById("events");
  const MAX = 500;
  function show(text, cls) { state.textContent = text; state.className = "state " + cls; }
  async function authenticate() {
    const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (!match) return;
    history.replaceState(null, "", location.pathname + location.search);
    await fetch("/v1/session", { method: "POST",
      headers: { Authorization: "Bearer " + decodeURIComponent(match[1]) } });
  }
  function add(type, data) {
    const item = document.createElement("li");
    item.textContent = type + " " + data;
    list.prepend(item);
    while (list.childElementCount > MAX) list.lastElementChild.remove();
  }
  authenticate().finally(function () {
    const source = new EventSource("/events");
    source.onopen = function () { show("live", "live"); };
    source.onerror = function () { show("reconnecting", "reconnecting"); };
    source.addEventListener("stream:gap", function (e) {
      const gap = JSON.parse(e.data);
      show("gap: " + (gap.missed === null ? "unknown" : gap.missed) + " missed", "gap");
    });
    source.onmessage = function (e) { add(e.type, e.data); };
  });
})();
