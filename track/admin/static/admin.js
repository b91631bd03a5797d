// The live page: polls ./feed every second and redraws. Every value from
// an event is put in with textContent, never as HTML: event contents come
// from clients.
"use strict";
(function () {
  const KINDS = ["session", "user", "item", "purchase", "batch"];
  const SHOWN = 100;
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  function duration(seconds) {
    seconds = Math.floor(seconds);
    const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
    const m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + s + "s";
  }

  function clock(t) {
    return new Date(t * 1000).toLocaleTimeString([], { hour12: false }) +
      "." + String(Math.floor((t % 1) * 1000)).padStart(3, "0");
  }

  function pairs(obj, cls) {
    const dl = el("dl", { class: "fields" + (cls ? " " + cls : "") });
    for (const [k, v] of Object.entries(obj || {})) {
      dl.append(el("dt", {}, k), el("dd", {}, v === null ? "null" : typeof v === "object" ? JSON.stringify(v) : v));
    }
    return dl;
  }

  function renderStatus(status) {
    const h = status.health || {};
    $("version").textContent = "version " + status.version;
    const db = el("span", { class: h.database === "up" ? "up" : "down" }, h.database || "?");
    const rows = [
      ["uptime", duration(status.uptime)],
      ["database", status.dsn],
      ["database is", db],
    ];
    // Whatever else /healthz reports (the host in use, the last error, ...).
    const known = new Set(["status", "database", "spool", "dead_letter", "workers"]);
    for (const [key, value] of Object.entries(h)) {
      if (known.has(key) || value === null || value === undefined || value === "") continue;
      rows.push([key.replaceAll("_", " "), typeof value === "object" ? JSON.stringify(value) : value]);
    }
    const spool = h.spool || {}, dead = h.dead_letter || {};
    rows.push(["spool", (spool.events ?? 0) + " events, " + (spool.bytes ?? 0) + " bytes" +
               (spool.writable === false ? " (not writable" + (spool.error ? ": " + spool.error : "") + ")" : "")]);
    rows.push(["dead letters", (dead.events ?? 0) + " events"]);
    rows.push(["ready", status.ready ? "yes" : "no"]);
    rows.push(["workers", (h.workers || []).length]);
    $("status-list").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    const now = Date.now() / 1000;
    $("workers").tBodies[0].replaceChildren(...(h.workers || []).map((w) => el("tr", {},
      el("td", {}, w.worker), el("td", {}, w.pid), el("td", {}, duration(now - w.started)),
      el("td", {}, el("span", { class: w.database === "up" ? "up" : "down" }, w.database)),
      el("td", { class: "num" }, (w.spool || {}).events ?? 0), el("td", { class: "num" }, (w.spool || {}).bytes ?? 0),
      el("td", { class: "num" }, (w.dead_letter || {}).events ?? 0), el("td", {}, w.ready ? "yes" : "no"),
      el("td", {}, w.recording ? "live" : "starting"))));
  }

  const SVG = "http://www.w3.org/2000/svg";
  function spark(rates) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 260 36");
    svg.setAttribute("preserveAspectRatio", "none");
    const all = rates.accepted.concat(rates.rejected);
    const top = Math.max(1, ...all);
    const base = document.createElementNS(SVG, "line");
    base.setAttribute("class", "base");
    base.setAttribute("x1", 0); base.setAttribute("x2", 260); base.setAttribute("y1", 35); base.setAttribute("y2", 35);
    svg.append(base);
    for (const name of ["accepted", "rejected"]) {
      const values = rates[name];
      if (values.length < 1) continue;
      const step = 260 / Math.max(values.length - 1, 1);
      const points = values.map((v, i) => (i * step).toFixed(1) + "," + (35 - (v / top) * 33).toFixed(1));
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("class", name);
      line.setAttribute("points", points.join(" "));
      svg.append(line);
    }
    const title = document.createElementNS(SVG, "title");
    const last = (a) => (a.length ? a[a.length - 1] : 0);
    title.textContent = "now: " + last(rates.accepted) + " accepted/s, " + last(rates.rejected) + " rejected/s; peak " + top + "/s";
    svg.append(title);
    return svg;
  }

  function renderKinds(kinds) {
    const names = Object.keys(kinds).sort((a, b) => KINDS.indexOf(a) - KINDS.indexOf(b));
    $("kinds").tBodies[0].replaceChildren(...names.map((k) => el("tr", { "data-kind": k },
      el("td", {}, k), el("td", { class: "num accepted" }, kinds[k].accepted),
      el("td", { class: "num rejected" }, kinds[k].rejected), el("td", {}, spark(kinds[k].rates)))));
    for (const id of ["accepted-kind", "rejected-kind"]) {
      const select = $(id);
      const have = new Set(Array.from(select.options).map((o) => o.value));
      for (const k of KINDS.concat(names)) {
        if (!have.has(k)) { select.append(el("option", { value: k }, k)); have.add(k); }
      }
    }
  }

  function acceptedEntry(e) {
    return el("li", { class: "entry", "data-kind": e.kind, "data-message-id": e.message_id || "" },
      el("div", { class: "head" }, el("span", { class: "kind" }, e.kind),
        el("span", { class: "mid" }, "MessageID " + e.message_id), el("span", { class: "time" }, clock(e.time)),
        e.worker !== undefined ? el("span", { class: "meta" }, "worker " + e.worker) : null),
      pairs(e.fields));
  }

  function rejectedEntry(e) {
    const error = e.error;
    const parts = [];
    if (error && typeof error === "object") {
      parts.push(el("div", {}, error.error || ""));
      if (error.fields) parts.push(pairs(error.fields, "errors"));
      for (const item of error.events || []) {
        parts.push(el("div", { class: "meta" }, "event " + item.index + (item.error ? ": " + item.error : "")));
        if (item.fields) parts.push(pairs(item.fields, "errors"));
      }
      const rest = Object.fromEntries(Object.entries(error).filter(([k]) => !["error", "fields", "events"].includes(k)));
      if (Object.keys(rest).length) parts.push(pairs(rest));
    } else {
      parts.push(el("div", {}, String(error)));
    }
    return el("li", { class: "entry", "data-kind": e.kind, "data-status": e.status },
      el("div", { class: "head" }, el("span", { class: "status" }, e.status), el("span", { class: "kind" }, e.kind),
        el("span", { class: "time" }, clock(e.time)), el("span", { class: "meta" }, "from " + e.client),
        el("span", { class: "meta" }, "User-Agent: " + (e.user_agent ?? "-")),
        e.worker !== undefined ? el("span", { class: "meta" }, "worker " + e.worker) : null),
      ...parts, el("pre", { class: "body" }, e.request || "(empty body)"));
  }

  function renderList(name, entries, make) {
    const kind = $(name + "-kind").value;
    const chosen = entries.filter((e) => !kind || e.kind === kind);
    const shown = chosen.slice(0, SHOWN);
    $(name + "-count").textContent = chosen.length > SHOWN ? "latest " + SHOWN + " of " + chosen.length : chosen.length + "";
    const list = $(name);
    // Redraw only when something changed, so a selection or a scroll stays put.
    const key = kind + "|" + chosen.length + "|" + (shown.length ? shown[0].time + ":" + shown[shown.length - 1].time : "");
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    if (!shown.length) list.replaceChildren(el("li", { class: "empty" }, "nothing yet"));
    else list.replaceChildren(...shown.map(make));
  }

  let last = null;
  function render() {
    if (!last) return;
    renderStatus(last.status);
    renderKinds(last.kinds);
    renderList("accepted", last.accepted, acceptedEntry);
    renderList("rejected", last.rejected, rejectedEntry);
  }

  async function poll() {
    let wait = 1000;
    try {
      const response = await fetch("feed", { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      last = await response.json();
      wait = last.poll_ms || wait;
      $("link").textContent = "live";
      $("link").className = "pill live";
      render();
    } catch (err) {
      $("link").textContent = "no answer (" + err.message + "), retrying";
      $("link").className = "pill lost";
      wait = 2000;
    }
    setTimeout(poll, wait);
  }

  for (const id of ["accepted-kind", "rejected-kind"]) $(id).addEventListener("change", render);
  poll();
})();
