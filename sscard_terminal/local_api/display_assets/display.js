// The passenger display's script: one WebSocket to /display/events on the same origin,
// each message a display view ({"type": "presentation", ...}) or the central link's state
// ({"type": "link", "online": bool}). It loads nothing else and sends nothing back.
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const holdMs = Math.min(Math.max(Number(params.get("hold") || 4) * 1000, 500), 60000);
  const lane = params.get("lane");
  const idleText = { zh: "请刷卡或扫码", en: "Tap your card or scan your code" };
  const el = (id) => document.getElementById(id);
  // For tests and a technician's console: when each presentation reached the page.
  const shown = (window.sscardDisplay = { updates: {}, last: null });
  let backToIdle = null;
  let retryMs = 250;

  function pair(id, text) {
    const box = el(id);
    el(id + "-zh").textContent = text ? text.zh : "";
    el(id + "-en").textContent = text ? text.en : "";
    if (box.id !== "headline") box.hidden = !text;
  }

  function idle() {
    document.body.dataset.outcome = "idle";
    pair("headline", idleText);
    pair("reason", null);
    pair("concession", null);
    pair("renewal", null);
    el("name").hidden = true;
  }

  function show(view) {
    clearTimeout(backToIdle);
    document.body.dataset.outcome = view.outcome;
    document.body.dataset.seq = String(view.seq);
    pair("headline", view.headline);
    pair("reason", view.reason);
    pair("concession", view.concession);
    pair("renewal", view.renewal);
    el("name").textContent = view.name || "";
    el("name").hidden = !view.name;
    shown.updates[view.seq] = Date.now();
    shown.last = view.seq;
    backToIdle = setTimeout(idle, holdMs);
  }

  function link(online) {
    document.body.dataset.online = online ? "yes" : "no";
    el("link").hidden = online;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const query = lane ? "?lane=" + encodeURIComponent(lane) : "";
    const socket = new WebSocket(scheme + location.host + "/display/events" + query);
    socket.onopen = () => {
      retryMs = 250;
      document.body.dataset.connected = "yes";
    };
    socket.onmessage = (message) => {
      let view;
      try {
        view = JSON.parse(message.data);
      } catch (e) {
        return;
      }
      if (view.type === "presentation") show(view);
      else if (view.type === "link") link(view.online);
    };
    socket.onclose = () => {
      document.body.dataset.connected = "no";
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 5000);
    };
  }

  idle();
  connect();
})();
