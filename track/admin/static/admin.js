// The live page: polls ./feed every second (with the search and filters,
// which the server answers over everything it holds) and redraws. Every
// value from an event is put in with textContent, never as HTML: event
// contents come from clients.
"use strict";
(function () {
  const LAST = ["batch", "other"]; // not kinds: a batch naming no kind, a path naming none
  const SVG = "http://www.w3.org/2000/svg";
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

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
    const m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + s + "s";
  }

  function clock(t, ms) {
    const text = new Date(t * 1000).toLocaleTimeString([], { hour12: false });
    return ms === false ? text : text + "." + String(Math.floor((t % 1) * 1000)).padStart(3, "0");
  }

  const number = (n) => Number(n).toLocaleString("en-US");
  const text = (v) => (v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const empty = (v) => v === null || v === undefined || v === "";

  // ---- status, and marking it stale when the feed stops answering ----

  let lastAnswer = null; // the browser's clock when the feed last answered

  function renderStatus(status) {
    const h = status.health || {};
    $("version").textContent = "version " + status.version;
    const db = el("span", { class: h.database === "up" ? "up" : "down" }, h.database || "?");
    const rows = [["uptime", duration(status.uptime)], ["database", status.dsn], ["database is", db]];
    // Whatever else /healthz reports (the host in use, the last error, ...).
    const known = new Set(["status", "database", "spool", "dead_letter", "workers"]);
    for (const [key, value] of Object.entries(h)) {
      if (known.has(key) || empty(value)) continue;
      rows.push([key.replaceAll("_", " "), text(value)]);
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
      el("td", {}, w.restarts ? w.restarts + ", last at " + clock(w.restarted, false) : "none"),
      el("td", {}, el("span", { class: w.database === "up" ? "up" : "down" }, w.database)),
      el("td", { class: "num" }, (w.spool || {}).events ?? 0), el("td", { class: "num" }, (w.spool || {}).bytes ?? 0),
      el("td", { class: "num" }, (w.dead_letter || {}).events ?? 0), el("td", {}, w.ready ? "yes" : "no"),
      el("td", {}, w.recording ? "live" : "starting"))));
  }

  function markStale(error) {
    document.body.classList.add("stale");
    const since = lastAnswer === null ? "it has not answered yet"
      : "last answer at " + clock(lastAnswer / 1000, false) + ", " + duration((Date.now() - lastAnswer) / 1000) + " ago";
    $("link").textContent = "no answer (" + error + "): " + since;
    $("link").className = "pill lost";
    $("stale-note").textContent = "stale: " + since;
  }

  // ---- counts and graphs ----

  // The kinds the service serves, in its order (custom ones included), then
  // any other counted (one no longer served), then batch and other.
  function ordered(feed, names) {
    const served = (feed.served || []).filter((k) => !LAST.includes(k));
    const rank = (k) => (served.includes(k) ? served.indexOf(k) : LAST.includes(k) ? served.length + 1 + LAST.indexOf(k)
      : served.length);
    return Array.from(new Set(names)).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  }

  let kindOptions = "";

  function renderCounts(feed) {
    const served = (feed.served || []).filter((k) => !LAST.includes(k));
    const names = ordered(feed, served.concat(Object.keys(feed.kinds)));
    const none = { accepted: 0, rejected: 0 };
    const rows = names.map((k) => el("tr", { "data-kind": k }, el("td", {}, k),
      el("td", { class: "num accepted" }, number((feed.kinds[k] || none).accepted)),
      el("td", { class: "num rejected" }, number((feed.kinds[k] || none).rejected))));
    const b = feed.batch_requests || { accepted: 0, rejected: 0 };
    rows.push(el("tr", { class: "requests", "data-kind": "batch requests" }, el("td", {}, "batch requests"),
      el("td", { class: "num accepted" }, number(b.accepted)), el("td", { class: "num rejected" }, number(b.rejected))));
    $("kinds").tBodies[0].replaceChildren(...rows);
    const reasons = Object.entries(feed.reasons || {}).sort((a, b) => b[1] - a[1]);
    $("reasons").tBodies[0].replaceChildren(...(reasons.length ? reasons.map(([r, n]) => el("tr", { "data-reason": r },
      el("td", {}, r.replaceAll("_", " ")), el("td", { class: "num rejected" }, number(n))))
      : [el("tr", {}, el("td", { class: "empty" }, "none"), el("td", {}))]));
    // The kind filter: every kind served, batch, and whatever else was counted.
    const select = $("kind");
    const choices = ordered(feed, names.concat(["batch"]));
    if (select.value && !choices.includes(select.value)) choices.push(select.value); // still asked for
    if (choices.join(",") !== kindOptions) {
      kindOptions = choices.join(",");
      const chosen = select.value;
      select.replaceChildren(el("option", { value: "" }, "all"), ...choices.map((k) => el("option", { value: k }, k)));
      select.value = chosen;
    }
  }

  function niceTop(value) {
    if (value <= 1) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  // One graph: rates against a fixed clock window [end - window, end], a
  // numeric axis from 0 to a round top, a line per series.
  function graph(title, times, series, end, window, W) {
    const H = 130, left = 46, right = 8, top = 16, bottom = 20;
    const plotW = W - left - right, plotH = H - top - bottom, start = end - window;
    const peak = niceTop(Math.max(0, ...series.flatMap((s) => s.values)));
    const root = svg("svg", { class: "graph", viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img" });
    root.append(svg("title", {}, title));
    root.append(svg("text", { class: "title", x: left, y: 10 }, title));
    for (const f of [0, 0.5, 1]) {
      const y = top + plotH - f * plotH;
      root.append(svg("line", { class: f ? "grid" : "axis", x1: left, x2: W - right, y1: y, y2: y }));
      root.append(svg("text", { class: "tick", x: left - 4, y: y + 3, "text-anchor": "end" },
        number(Math.round(peak * f * 100) / 100) + (f === 1 ? "/s" : "")));
    }
    const step = window <= 300 ? 60 : 600;
    for (let t = Math.ceil(start / step) * step; t <= end; t += step) {
      const x = left + ((t - start) / window) * plotW;
      root.append(svg("line", { class: "grid", x1: x, x2: x, y1: top, y2: top + plotH }));
      const anchor = x > W - right - 16 ? "end" : "middle"; // the last label stays inside the graph
      root.append(svg("text", { class: "tick", x: x, y: H - 6, "text-anchor": anchor }, clock(t, false).slice(0, 5)));
    }
    for (const s of series) {
      const points = [];
      s.values.forEach((v, i) => {
        if (times[i] < start) return;
        points.push((left + ((times[i] - start) / window) * plotW).toFixed(1) + "," + (top + plotH - (v / peak) * plotH).toFixed(1));
      });
      if (points.length) root.append(svg("polyline", { class: "line " + s.cls, points: points.join(" ") }));
    }
    const last = (a) => (a.length ? a[a.length - 1] : 0);
    // The legend: each line's name in its colour, with its latest rate.
    const legend = svg("text", { class: "now", x: W - right, y: 10, "text-anchor": "end" });
    series.forEach((s, i) => legend.append(svg("tspan", { class: s.cls }, (i ? "   " : "") + s.name + " " +
      number(last(s.values)) + "/s")));
    root.append(legend);
    return root;
  }

  function renderGraphs(feed) {
    const rates = feed.rates || { t: [], kinds: {}, reasons: {}, window: 300 };
    const names = ordered(feed, Object.keys(rates.kinds));
    $("rate-graphs").replaceChildren(...names.map((k) => graph(k, rates.t,
      [{ name: "accepted", cls: "accepted", values: rates.kinds[k].accepted },
       { name: "rejected", cls: "rejected", values: rates.kinds[k].rejected }], feed.now, rates.window, 560)));
    const reasons = Object.keys(rates.reasons).sort();
    const series = reasons.map((r, i) => ({ name: r.replaceAll("_", " "), cls: "r" + (i % 8), values: rates.reasons[r] }));
    $("reason-graph").replaceChildren(graph(reasons.length ? "rejected events by reason" : "no rejections",
      rates.t, series, feed.now, rates.window, 1140));
  }

  // ---- the table of events ----

  const expanded = new Set();
  let showEmpty = false;

  function entryId(e) {
    return [e.status ?? "201", e.time, e.kind, e.message_id ?? "", e.client ?? "", e.worker ?? ""].join("|");
  }

  function summary(e) {
    if (e.status === undefined) {
      return Object.entries(e.fields || {}).filter(([, v]) => !empty(v)).slice(0, 5)
        .map(([k, v]) => k + "=" + text(v)).join("  ");
    }
    const error = e.error;
    if (!error || typeof error !== "object") return text(error);
    const fields = Object.entries(error.fields || {}).map(([k, v]) => k + " " + v);
    for (const item of error.events || []) {
      fields.push("event " + item.index + ": " + (item.error || Object.entries(item.fields || {}).map(([k, v]) => k + " " + v).join(", ")));
    }
    return (error.error || "") + (fields.length ? ": " + fields.join("; ") : "");
  }

  function pairs(obj, cls) {
    const dl = el("dl", { class: "fields" + (cls ? " " + cls : "") });
    for (const [k, v] of Object.entries(obj || {})) {
      if (!showEmpty && empty(v)) continue;
      dl.append(el("dt", {}, k), el("dd", {}, v === null ? "null" : text(v)));
    }
    return dl;
  }

  function copyButton(json) {
    const button = el("button", { type: "button", class: "copy" }, "copy JSON");
    button.addEventListener("click", async (ev) => {
      ev.stopPropagation();
      try {
        await navigator.clipboard.writeText(json);
        button.textContent = "copied";
      } catch (err) {
        button.textContent = "copy failed: select the JSON";
      }
      setTimeout(() => { button.textContent = "copy JSON"; }, 1500);
    });
    return button;
  }

  function detail(e) {
    const parts = [];
    if (e.status === undefined) {
      parts.push(pairs({ MessageID: e.message_id, ...e.fields }));
      if (!showEmpty) {
        const hidden = Object.values(e.fields || {}).filter(empty).length;
        if (hidden) parts.push(el("div", { class: "meta" }, hidden + " empty field" + (hidden > 1 ? "s" : "") + " hidden"));
      }
    } else {
      const error = e.error;
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
        parts.push(el("div", {}, text(error)));
      }
      parts.push(pairs({ client: e.client, "User-Agent": e.user_agent ?? "-" }));
      parts.push(el("div", { class: "meta" }, "body sent (first 1 KiB)"), el("pre", { class: "body" }, e.request || "(empty body)"));
    }
    if (e.worker !== undefined) parts.push(el("div", { class: "meta" }, "worker " + e.worker));
    const json = JSON.stringify(e, null, 2);
    parts.push(el("div", { class: "raw-head" }, el("span", { class: "meta" }, "raw JSON"), copyButton(json)),
      el("pre", { class: "raw" }, json));
    return el("div", { class: "detail" }, ...parts);
  }

  function row(e) {
    const id = entryId(e);
    const rejected = e.status !== undefined;
    const tr = el("tr", { class: "event" + (rejected ? " rejected" : " accepted") + (expanded.has(id) ? " open" : ""),
                          "data-kind": e.kind, "data-message-id": e.message_id || "", tabindex: "0" },
      el("td", { class: "time" }, clock(e.time)),
      el("td", {}, el("span", { class: "badge " + (rejected ? "rejected" : "accepted") }, rejected ? e.status : "201")),
      el("td", { class: "kind" }, e.kind), el("td", { class: "mid" }, e.message_id || ""),
      el("td", { class: "summary" }, summary(e)));
    const toggle = () => {
      if (expanded.has(id)) expanded.delete(id); else expanded.add(id);
      lastKey = null;
      renderEvents();
    };
    tr.addEventListener("click", toggle);
    tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); toggle(); } });
    if (!expanded.has(id)) return [tr];
    return [tr, el("tr", { class: "detail-row" }, el("td", { colspan: "5" }, detail(e)))];
  }

  let last = null; // the latest feed
  let shownFeed = null; // the feed the table shows (held while paused)
  let pausedAt = null;
  let limit = 100;
  let lastKey = null;

  function renderEvents() {
    const feed = shownFeed;
    if (!feed) return;
    const entries = feed.accepted.concat(feed.rejected).sort((a, b) => b.time - a.time);
    const matched = feed.matched || {}, held = feed.held || {};
    const total = (matched.accepted || 0) + (matched.rejected || 0);
    $("events-count").textContent = "showing " + number(entries.length) + " of " + number(total) + " matching; holding " +
      number(held.accepted || 0) + " accepted and " + number(held.rejected || 0) + " rejected (keeps the latest " +
      number(feed.keep) + " of each" + ((feed.status.health.workers || []).length > 1 ? " per worker" : "") + ")";
    $("more").hidden = entries.length >= total;
    // Redraw only when something changed, so a selection or a scroll stays put.
    const key = [entries.length, total, entries.length ? entryId(entries[0]) + entryId(entries[entries.length - 1]) : "",
                 showEmpty, Array.from(expanded).join(",")].join("|");
    if (key === lastKey) return;
    lastKey = key;
    const body = $("events").tBodies[0];
    if (!entries.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: "5", class: "empty" }, filtered() ? "nothing matches" : "nothing yet")));
    } else {
      body.replaceChildren(...entries.flatMap(row));
    }
  }

  function renderPaused() {
    if (pausedAt === null || !last) { $("paused-note").textContent = ""; return; }
    const arrived = last.accepted.concat(last.rejected).filter((e) => e.time > pausedAt).length;
    const capped = arrived >= limit ? number(arrived) + "+" : number(arrived);
    $("paused-note").textContent = "paused at " + clock(pausedAt, false) + ": " + capped +
      " arrived since, kept for when you resume";
  }

  function render() {
    if (!last) return;
    renderStatus(last.status);
    renderCounts(last);
    renderGraphs(last);
    if (pausedAt === null) shownFeed = last;
    renderEvents();
    renderPaused();
  }

  function filtered() {
    return Boolean($("search").value.trim() || $("kind").value || $("status-filter").value);
  }

  function feedUrl() {
    const params = new URLSearchParams();
    const q = $("search").value.trim();
    if (q) params.set("q", q);
    if ($("kind").value) params.set("kind", $("kind").value);
    if ($("status-filter").value) params.set("status", $("status-filter").value);
    params.set("window", $("window").value);
    params.set("limit", String(limit));
    return "feed?" + params.toString();
  }

  let timer = null;
  let asking = 0; // answers to older questions (before the search changed) are dropped
  async function poll() {
    clearTimeout(timer);
    const mine = ++asking;
    let wait = 1000;
    try {
      const response = await fetch(feedUrl(), { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const feed = await response.json();
      if (mine !== asking) return;
      last = feed;
      lastAnswer = Date.now();
      wait = last.poll_ms || wait;
      document.body.classList.remove("stale");
      $("link").textContent = "live";
      $("link").className = "pill live";
      $("stale-note").textContent = "";
      render();
    } catch (err) {
      if (mine !== asking) return;
      markStale(err.message);
      wait = 2000;
    }
    timer = setTimeout(poll, wait);
  }

  function restart() {
    limit = 100;
    if (pausedAt !== null) resume();
    lastKey = null;
    poll();
  }

  function resume() {
    pausedAt = null;
    $("pause").textContent = "Pause";
    $("pause").classList.remove("on");
  }

  let typing = null;
  $("search").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(restart, 250); });
  for (const id of ["kind", "status-filter"]) $(id).addEventListener("change", restart);
  $("window").addEventListener("change", poll);
  $("show-empty").addEventListener("change", () => { showEmpty = $("show-empty").checked; lastKey = null; renderEvents(); });
  $("pause").addEventListener("click", () => {
    if (pausedAt === null) {
      pausedAt = last ? last.now : Date.now() / 1000;
      $("pause").textContent = "Resume";
      $("pause").classList.add("on");
      renderPaused();
    } else {
      // What arrived meanwhile is held by the server: ask for enough of it.
      const arrived = last ? last.accepted.concat(last.rejected).filter((e) => e.time > pausedAt).length : 0;
      limit = Math.max(limit, arrived + 100);
      resume();
      lastKey = null;
      poll();
    }
  });
  $("more").addEventListener("click", () => { limit += 100; poll(); });
  poll();
})();
