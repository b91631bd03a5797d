/*! track.js: a browser client for the track event collector. No dependencies.
 *
 *   const t = Track.init({url: "https://collector.example"});
 *   const id = t.track("user", {ProfileID: 42, Region: "eu"});  // its MessageID
 *   await t.flush();  // true once every event tracked before is stored (or refused)
 *
 * Events wait in localStorage (so a reload, a closed tab or being offline
 * loses none) and go out in batches to /api/1.0/track/batch/ with fetch
 * (keepalive).  When the page is hidden or left, whatever is still queued is
 * handed to navigator.sendBeacon as text/plain JSON.  An event keeps its
 * MessageID through every retry, and the collector stores a MessageID once,
 * so sending again is always safe: events stay queued until a 201 says they
 * are stored.  Transport errors, 408, 429 and 5xx are retried with
 * exponential backoff and jitter (Retry-After honoured); an event the
 * collector refuses (a 4xx naming it) is dropped with console.warn.
 * This file has no tie to the collector that serves it: bundle your own copy.
 */
(function (root, factory) {
  "use strict";
  var Track = factory(root);
  if (typeof module === "object" && module.exports) {
    module.exports = Track;
  } else {
    root.Track = Track;
  }
})(typeof self !== "undefined" ? self : this, function (root) {
  "use strict";

  var BATCH_PATH = "/api/1.0/track/batch/";
  var DEFAULTS = {
    batchSize: 50,          // events per request
    maxBytes: 60000,        // bytes per request: keepalive and sendBeacon allow 64 KiB
    flushInterval: 1000,    // ms from the first queued event to its send
    maxQueue: 1000,         // queued events kept; past it the oldest is dropped (with a warning)
    minBackoff: 500,        // ms before the first retry, doubling ...
    maxBackoff: 30000,      // ... up to this
    storageKey: null        // localStorage key; default "track:" + url
  };
  var RETRYABLE = {408: true, 429: true};

  function warn() {
    if (root.console && root.console.warn) {
      root.console.warn.apply(root.console, arguments);
    }
  }

  function newMessageId() {
    var c = root.crypto;
    if (c && typeof c.randomUUID === "function") {
      return c.randomUUID();
    }
    var bytes = new Uint8Array(16);
    if (c && c.getRandomValues) {
      c.getRandomValues(bytes);
    } else {
      for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = "";
    for (var j = 0; j < 16; j++) hex += (bytes[j] + 0x100).toString(16).slice(1);
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" +
      hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function byteLength(text) {
    return typeof TextEncoder !== "undefined" ? new TextEncoder().encode(text).length : text.length * 3;
  }

  // The queue lives in localStorage and is read before and written after
  // every change, never cached: other tabs of the same site share it.
  function Queue(key) {
    this.key = key;
    this.memory = [];
    try {
      this.storage = root.localStorage;
      this.storage.setItem(key + ":probe", "1");
      this.storage.removeItem(key + ":probe");
    } catch (e) {
      this.storage = null;  // blocked (privacy settings): this page's memory only
    }
  }
  Queue.prototype.load = function () {
    if (!this.storage) return this.memory.slice();
    try {
      var value = JSON.parse(this.storage.getItem(this.key) || "[]");
      return Array.isArray(value) ? value : [];
    } catch (e) {
      return [];
    }
  };
  Queue.prototype.save = function (events) {
    if (this.storage) {
      try {
        this.storage.setItem(this.key, JSON.stringify(events));
        return;
      } catch (e) {
        warn("track: localStorage refused the queue; keeping it in this page only", e);
        this.storage = null;
      }
    }
    this.memory = events.slice();
  };
  Queue.prototype.remove = function (ids) {
    if (!ids.length) return;
    var gone = {};
    ids.forEach(function (id) { gone[id] = true; });
    this.save(this.load().filter(function (e) { return !gone[e.MessageID]; }));
  };

  function Tracker(options) {
    if (!options || typeof options.url !== "string" || !options.url) {
      throw new TypeError("Track.init needs {url: \"https://your-collector\"}");
    }
    var o = {};
    for (var name in DEFAULTS) o[name] = options[name] !== undefined ? options[name] : DEFAULTS[name];
    this.options = o;
    this.url = options.url.replace(/\/+$/, "");
    this.endpoint = this.url + BATCH_PATH;
    this.queue = new Queue(o.storageKey || "track:" + this.url);
    this.sending = null;    // the Promise of the send loop while it runs
    this.timer = null;
    this.failures = 0;
    this.limit = o.batchSize;  // lowered after a 413, and to 1 to find a refused event
    var self = this;
    if (root.addEventListener) {
      root.addEventListener("pagehide", function () { self.beacon(); });
      root.addEventListener("online", function () { self.schedule(0); });
      if (root.document) {
        root.document.addEventListener("visibilitychange", function () {
          if (root.document.visibilityState === "hidden") self.beacon();
        });
      }
    }
    if (this.queue.load().length) this.schedule(0);  // left over from an earlier visit
  }

  /** Queue one event; returns its MessageID (the one in `fields`, or a new UUID). */
  Tracker.prototype.track = function (kind, fields) {
    if (typeof kind !== "string" || !kind) throw new TypeError("track(kind, fields): kind must be a string");
    if (fields !== undefined && (fields === null || typeof fields !== "object")) {
      throw new TypeError("track(kind, fields): fields must be an object");
    }
    var event = {type: kind};
    for (var name in fields) {
      if (Object.prototype.hasOwnProperty.call(fields, name) && name !== "type") event[name] = fields[name];
    }
    if (event.MessageID === undefined || event.MessageID === null || event.MessageID === "") {
      event.MessageID = newMessageId();
    }
    // Queue a plain JSON copy, or refuse the event here: one value that JSON
    // cannot hold (a BigInt, a cycle) would otherwise break every later save
    // and send of the queue.
    try {
      event = JSON.parse(JSON.stringify(event));
    } catch (e) {
      throw new TypeError("track(kind, fields): fields must be JSON values (" + e.message + ")");
    }
    var events = this.queue.load();
    events.push(event);
    var over = events.length - this.options.maxQueue;
    if (over > 0) {
      warn("track: the queue holds " + this.options.maxQueue + " events; dropped the oldest " + over,
        events.slice(0, over));
      events = events.slice(over);
    }
    this.queue.save(events);
    this.schedule(events.length >= this.options.batchSize ? 0 : this.options.flushInterval);
    return event.MessageID;
  };

  /** Send everything queued now.  Resolves true once every event tracked
   * before the call is stored (or refused and dropped), false if the
   * collector could not be reached: those stay queued and are retried. */
  Tracker.prototype.flush = function () {
    var self = this;
    var wanted = this.queue.load().map(function (e) { return e.MessageID; });
    function left() {
      var queued = {};
      self.queue.load().forEach(function (e) { queued[e.MessageID] = true; });
      return wanted.some(function (id) { return queued[id]; });
    }
    function step() {
      return self.run().then(function (ok) { return ok ? (left() ? step() : true) : false; });
    }
    return step();
  };

  Tracker.prototype.schedule = function (delay) {
    var self = this;
    if (this.timer !== null) {
      if (delay > 0) return;  // one is due already
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(function () { self.timer = null; self.run(); }, delay);
  };

  /** The send loop: batch after batch until the queue is empty (true) or
   * a send fails (false, and a retry is scheduled). */
  Tracker.prototype.run = function () {
    if (this.sending) return this.sending;
    var self = this;
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    function loop() {
      var batch = self.nextBatch();
      if (!batch.length) return Promise.resolve(true);
      return self.send(batch).then(function (delay) {
        if (delay === 0) return loop();
        self.failures += 1;
        self.sending = null;
        self.schedule(delay);
        return false;
      });
    }
    this.sending = loop().then(function (ok) {
      if (ok) { self.sending = null; self.failures = 0; }
      return ok;
    }, function (error) {
      self.sending = null;
      warn("track: unexpected error while sending", error);
      self.schedule(self.backoff(0));
      return false;
    });
    return this.sending;
  };

  Tracker.prototype.nextBatch = function () {
    var events = this.queue.load();
    var batch = [];
    var bytes = 14;  // {"events":[]}
    for (var i = 0; i < events.length && batch.length < this.limit; i++) {
      var size = byteLength(JSON.stringify(events[i])) + 1;
      if (batch.length && bytes + size > this.options.maxBytes) break;
      batch.push(events[i]);
      bytes += size;
    }
    return batch;
  };

  Tracker.prototype.backoff = function (retryAfterSeconds) {
    var o = this.options;
    var base = Math.min(o.maxBackoff, o.minBackoff * Math.pow(2, this.failures));
    var delay = base / 2 + Math.random() * base / 2;  // jitter: many pages must not retry in step
    return Math.max(delay, (retryAfterSeconds || 0) * 1000);
  };

  /** One request; resolves 0 to go on at once, or the ms to wait before a retry. */
  Tracker.prototype.send = function (batch) {
    var self = this;
    var body = JSON.stringify({events: batch});
    var ids = batch.map(function (e) { return e.MessageID; });
    var init = {
      method: "POST",
      body: body,
      // text/plain is read as JSON by the collector, and needs no preflight.
      headers: {"Content-Type": "text/plain;charset=UTF-8"},
      credentials: "omit",
      mode: "cors",
      keepalive: byteLength(body) <= 65536
    };
    return fetch(this.endpoint, init).then(function (response) {
      var status = response.status;
      if (status === 201) {
        self.queue.remove(ids);
        if (self.limit < self.options.batchSize) self.limit = Math.min(self.options.batchSize, self.limit * 2);
        return 0;
      }
      if (RETRYABLE[status] || status >= 500) {
        return self.backoff(parseInt(response.headers.get("Retry-After"), 10) || 0);
      }
      return response.json().catch(function () { return null; }).then(function (answer) {
        return self.refused(batch, status, answer);
      });
    }, function () {
      return self.backoff(0);  // offline, collector down, or an answer CORS hides
    });
  };

  /** A 4xx: drop exactly the events it names, and go on with the rest. */
  Tracker.prototype.refused = function (batch, status, answer) {
    var named = answer && Array.isArray(answer.events) ? answer.events : [];
    var drop = [];
    named.forEach(function (problem) {
      var event = batch[problem.index];
      if (event) {
        drop.push(event.MessageID);
        warn("track: the collector refused an event (HTTP " + status + ": " + JSON.stringify(problem) +
          "); dropped it", event);
      }
    });
    if (!drop.length) {
      if (batch.length > 1) {
        // Nothing named (413: too big; or a refusal of the whole body): go
        // one event at a time until the one at fault is found.
        this.limit = status === 413 ? Math.max(1, Math.floor(batch.length / 2)) : 1;
        return 0;
      }
      drop.push(batch[0].MessageID);
      warn("track: the collector refused an event (HTTP " + status + ": " + JSON.stringify(answer) +
        "); dropped it", batch[0]);
    }
    this.queue.remove(drop);
    return 0;
  };

  /** The page is going away (or hidden): hand what is queued to the
   * browser, which sends it even after the page is gone.  The events stay
   * queued until a 201 is seen, so a beacon that never arrives is sent again
   * on the next visit; one that did arrive is not stored twice. */
  Tracker.prototype.beacon = function () {
    var nav = root.navigator;
    if (!nav || typeof nav.sendBeacon !== "function") return;
    var events = this.queue.load();
    var chunk = [];
    var bytes = 14;
    for (var i = 0; i <= events.length; i++) {
      var size = i < events.length ? byteLength(JSON.stringify(events[i])) + 1 : 0;
      if (chunk.length && (i === events.length || bytes + size > this.options.maxBytes)) {
        // A string body goes as text/plain;charset=UTF-8: no preflight.
        if (!nav.sendBeacon(this.endpoint, JSON.stringify({events: chunk}))) return;  // over the quota
        chunk = [];
        bytes = 14;
      }
      if (i < events.length) {
        chunk.push(events[i]);
        bytes += size;
      }
    }
  };

  return {
    /** A tracker sending to the collector at `options.url`. */
    init: function (options) { return new Tracker(options); },
    Tracker: Tracker,
    version: "1"
  };
});
