/*! track.js: a browser client for the track event collector. No dependencies.
 *
 *   const t = Track.init({url: "https://collector.example"});
 *   const id = t.track("user", {ProfileID: 42, Region: "eu"});  // its MessageID
 *   await t.flush();  // true once every event tracked before is stored (or refused)
 *
 * Each tab keeps its own queue, in memory and in localStorage under a key of
 * its own (its tab id, kept in sessionStorage, so a reload keeps it).  A tab
 * writes only its own key, so tabs never overwrite each other's events.  A
 * live tab holds a Web Lock named for its id and writes a heartbeat every
 * second; a tab whose heartbeat stopped (closed, crashed, or gone before its
 * queue was sent) has its queue claimed by another tab of the site, or by the
 * next visit: the claimer takes the dead tab's lock (so two tabs cannot
 * claim one queue, and a live tab's queue is never claimed), moves the
 * events into its own queue and sends them with the same MessageIDs.
 * Without the Web Locks API, a queue whose heartbeat is older than
 * `staleAfter` is claimed without a lock: two tabs may then both send it,
 * and a tab that was only asleep still sends what it holds in memory; the
 * collector stores a MessageID once, so that costs requests, never a
 * duplicate row.
 *
 * Batches go to /api/1.0/track/batch/ with fetch (keepalive); when the page
 * is hidden or left, what is queued is handed to navigator.sendBeacon.  An
 * event keeps its MessageID through every retry and stays queued until a
 * 201 says it is stored.  Each event carries `Timestamp` (epoch ms, set by
 * track()) and each request `SentAt`, so the collector stores when the event
 * happened even if it is sent days later.
 * After `t.anonymous(true)` (or with the option `anonymous: true`), the
 * collector stores no client address for the events tracked from then on:
 * their requests carry `Track-Anonymous: 1` (a cross-origin page then needs
 * a CORS preflight), and their beacons `"Anonymous": true` in the body, as a
 * beacon cannot set headers; `t.anonymous(false)` ends it for later events.
 * The tracker learns the collector's kinds and their fields' rules from the
 * collector's OpenAPI document (GET /api/1.0/openapi.json, fetched at the
 * first track(), in the background, and shared by the page's trackers and
 * tabs for `rulesMaxAge`): an event the collector would refuse (a kind it
 * does not serve, a field missing, unknown or out of its rules) is then
 * reported by track() at once, with console.warn, and never queued.  It is
 * never stricter than the collector: rules it cannot read the same way are
 * left to the collector, and while they are unknown (or older than
 * `rulesMaxAge`) every event is queued and the collector decides.
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
    maxQueue: 1000,         // this tab's queued events; when full, track() drops the oldest (with a warning)
    minBackoff: 500,        // ms before the first retry, doubling ...
    maxBackoff: 30000,      // ... up to this
    minRetryAfter: 500,     // ms: a Retry-After below this (0, a past date) is raised to it
    heartbeat: 1000,        // ms between a tab's heartbeats (and its look for abandoned queues)
    staleAfter: 5000,       // ms without a heartbeat before a tab's queue is abandoned
    storageKey: null,       // prefix of the localStorage keys; default "track:" + url
    anonymous: false,       // store no client address for the events tracked (see anonymous())
    rulesMaxAge: 300000     // ms: the collector's rules are fetched again once older; 0: never checked here
  };
  var RETRYABLE = {408: true, 429: true};
  var ENVELOPE_BYTES = 59;  // {"SentAt":1234567890123,"Anonymous":true,"events":[]}
  var ANONYMOUS = "track:anonymous";  // marks a queued event tracked anonymously; never sent
  var live = {};            // prefix -> true for trackers of this page, which share its tab id
  var RULES_PATH = "/api/1.0/openapi.json";
  var books = {};           // collector url -> what this page knows of its kinds and rules
  var patterns = {};        // a rule's pattern -> its RegExp, or null if JavaScript cannot read it as given
  var PRINTABLE = /^[\x20-\x7e]*$/;  // text every pattern means the same for, here and in the collector
  var WORDS = {string: "a string", integer: "an integer", number: "a decimal number", boolean: "a boolean"};

  function warn() {
    if (root.console && root.console.warn) {
      root.console.warn.apply(root.console, arguments);
    }
  }

  function newId() {
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

  function now() {
    return new Date().getTime();
  }

  /** A Web Storage area, or null when the browser blocks it. */
  function storageArea(name) {
    try {
      var area = root[name];
      area.setItem("track:probe", "1");
      area.removeItem("track:probe");
      return area;
    } catch (e) {
      return null;
    }
  }

  function readJSON(area, key) {
    try {
      return JSON.parse(area.getItem(key) || "null");
    } catch (e) {
      return null;
    }
  }

  /** Seconds (or an HTTP date) of a Retry-After, as ms; NaN if absent. */
  function retryAfterMs(header, answer) {
    if (header) {
      if (/^\s*\d+\s*$/.test(header)) return parseInt(header, 10) * 1000;
      var date = Date.parse(header);
      if (!isNaN(date)) return date - now();
    }
    if (answer && typeof answer.retry_after === "number") return answer.retry_after * 1000;
    return NaN;
  }

  // ---- the collector's rules, as its OpenAPI document publishes them

  function own(object, key) {
    return Object.prototype.hasOwnProperty.call(object, key);
  }

  /** {kinds: [names, in the collector's order], schemas: {kind: schema}}:
   * the batch endpoint's event schemas, each naming its kind in `type`;
   * null for a document without them, or with one not read so. */
  function readRules(doc) {
    var list;
    try {
      list = doc.paths[BATCH_PATH].post.requestBody.content["application/json"].schema.properties.events.items.oneOf;
    } catch (e) {
      return null;
    }
    var rules = {kinds: [], schemas: {}};
    var read = Array.isArray(list) && list.every(function (schema) {
      var type = schema && schema.properties && schema.properties.type;
      var name = type && Array.isArray(type.enum) && type.enum.length === 1 ? type.enum[0] : null;
      if (typeof name !== "string" || own(rules.schemas, name)) return false;
      rules.kinds.push(name);
      rules.schemas[name] = schema;
      return true;
    });
    return read && rules.kinds.length ? rules : null;
  }

  /** A JSON value's type, as JSON Schema names it. */
  function typeOf(value) {
    if (value === null) return "null";
    if (Array.isArray(value)) return "array";
    if (typeof value === "number") return Math.floor(value) === value ? "integer" : "number";
    return typeof value;
  }

  function typed(type, value) {
    var found = typeOf(value);
    return type === found || (type === "number" && found === "integer");
  }

  /** Characters as the collector counts them (code points, not UTF-16 units). */
  function characters(text) {
    var n = 0;
    for (var i = 0; i < text.length; i++, n++) {
      var c = text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
        var d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) i++;
      }
    }
    return n;
  }

  /** Whether `pattern` means the same to Python's re (the collector's) for
   * any text: not with \d \w \s \b (Unicode there), `.` (which takes \r
   * there), nor flags. */
  function portable(pattern) {
    var inClass = false;
    for (var i = 0; i < pattern.length; i++) {
      var c = pattern.charAt(i);
      if (c === "\\") {
        if ("dDwWsSbB".indexOf(pattern.charAt(++i)) >= 0) return false;
      } else if (inClass) {
        inClass = c !== "]";
      } else if (c === "[") {
        inClass = true;
      } else if (c === "." || (c === "(" && /^\?[A-Za-z]/.test(pattern.slice(i + 1, i + 3)))) {
        return false;
      }
    }
    return true;
  }

  function regex(pattern) {
    if (!own(patterns, pattern)) {
      try {
        patterns[pattern] = new RegExp(pattern, "u");  // JSON Schema's (ECMA-262) regex, by code points
      } catch (e) {
        patterns[pattern] = null;  // another dialect's (Python's \Z, (?i), ...): left to the collector
      }
    }
    return patterns[pattern];
  }

  /** k when `step` is 10^-k (0.01: 2), else -1. */
  function places(step) {
    var text = String(step);
    var m = /^(?:1|0\.(0*)1|1e-(\d+))$/.exec(text);
    if (!m) return -1;
    return m[2] !== undefined ? +m[2] : m[1] !== undefined ? m[1].length + 1 : 0;
  }

  function between(schema, value) {
    var low = schema.minimum, high = schema.maximum, xlow = schema.exclusiveMinimum, xhigh = schema.exclusiveMaximum;
    var below = (typeof low === "number" && (xlow === true ? value <= low : value < low)) ||
      (typeof xlow === "number" && value <= xlow);
    var above = (typeof high === "number" && (xhigh === true ? value >= high : value > high)) ||
      (typeof xhigh === "number" && value >= xhigh);
    if (!below && !above) return null;
    var word = WORDS[schema.type] || "a number";
    if (typeof low === "number" && typeof high === "number") return "must be " + word + " between " + low + " and " + high;
    return "must be " + word + (below ? " of at least " + (typeof low === "number" ? low : xlow)
                                      : " of at most " + (typeof high === "number" ? high : xhigh));
  }

  /** Why `value` does not match `schema` (no oneOf at this level), or null. */
  function mismatchOne(schema, value) {
    var type = schema.type;
    if (typeof type === "string" && !typed(type, value)) return "must be " + (WORDS[type] || type);
    if (Array.isArray(schema.enum) && !schema.enum.some(function (e) { return e === value; })) {
      return "must be one of " + schema.enum.map(function (e) { return JSON.stringify(e); }).join(", ");
    }
    if (typeof value === "string") {
      var most = schema.maxLength, least = schema.minLength;
      if (typeof most === "number" && value.length > most && characters(value) > most) {
        return "must be at most " + most + " characters";
      }
      if (typeof least === "number" && (value.length < least || characters(value) < least)) {
        return "must be at least " + least + " characters";
      }
      var pattern = schema.pattern;
      var re = typeof pattern === "string" && (PRINTABLE.test(value) || portable(pattern)) ? regex(pattern) : null;
      if (re && !re.test(value)) return "must match " + schema.pattern;
      if (schema["x-bmp-only"] === true && /[\ud800-\udbff][\udc00-\udfff]/.test(value)) {
        return "contains characters outside the Basic Multilingual Plane (such as emoji), " +
          "which this database column (3-byte utf8) cannot store";
      }
    }
    if (typeof value === "number") {
      var out = between(schema, value);
      if (out) return out;
      var k = typeof schema.multipleOf === "number" ? places(schema.multipleOf) : -1;
      var text = String(value);  // what JSON.stringify sends
      if (k >= 0 && text.indexOf("e") < 0 && text.indexOf(".") >= 0 && text.length - text.indexOf(".") - 1 > k) {
        return "must have at most " + k + " digits after the decimal point";
      }
    }
    return null;
  }

  /** Why `value` does not match `schema`, or null.  oneOf is read as
   * anyOf: never stricter, and the same for the collector's alternatives,
   * which never overlap. */
  function mismatch(schema, value) {
    if (!schema || typeof schema !== "object") return null;
    var i, why;
    var alternatives = schema.oneOf || schema.anyOf;
    if (Array.isArray(alternatives) && alternatives.length) {
      var whys = [];
      for (i = 0; i < alternatives.length; i++) {
        why = mismatch(alternatives[i], value);
        if (!why) break;
        whys.push(why);
      }
      if (why) return chosen(alternatives, whys, value);
    }
    return mismatchOne(schema, value);
  }

  /** Which alternative's reason to give: that of a typed one the value is
   * of (an integer out of range), else what the field is (it also takes
   * text), else that of the value's own type. */
  function chosen(alternatives, whys, value) {
    var types = alternatives.map(function (a) { return a && a.type; });
    var i;
    for (i = 0; i < types.length; i++) {
      if (typeof types[i] === "string" && types[i] !== "string" && typed(types[i], value)) return whys[i];
    }
    for (i = 0; i < types.length; i++) {
      if (own(WORDS, types[i]) && types[i] !== "string") return "must be " + WORDS[types[i]];
    }
    for (i = 0; i < types.length; i++) if (typed(types[i], value)) return whys[i];
    return whys[0];
  }

  /** What the collector would refuse in `event` (a JSON copy, with its
   * `type`), by `rules`: {field: why}, or null when it would take it. */
  function refusal(rules, event) {
    if (!own(rules.schemas, event.type)) return {type: "must be one of " + rules.kinds.join(", ")};
    var schema = rules.schemas[event.type];
    var properties = schema.properties || {};
    var required = Array.isArray(schema.required) ? schema.required : [];
    var problems = {};
    var found = false;
    for (var name in event) {
      if (!own(event, name) || name === "type") continue;
      var value = event[name];
      var why = null;
      if (!own(properties, name)) {
        why = schema.additionalProperties === false ? "unknown field" : null;
      } else if (value === null) {
        why = mismatch(properties[name], null) && "must not be null";
      } else if (value !== "" || required.indexOf(name) >= 0) {  // "" in a field not required: not given
        why = mismatch(properties[name], value);
        if (why && typeof properties[name]["x-track-message"] === "string") why = properties[name]["x-track-message"];
      }
      if (why) {
        problems[name] = value === "" ? "is required" : why;
        found = true;
      }
    }
    required.forEach(function (name) {
      if (!own(event, name)) {
        problems[name] = "is required";
        found = true;
      }
    });
    return found ? problems : null;
  }

  function Tracker(options) {
    if (!options || typeof options.url !== "string" || !options.url) {
      throw new TypeError("Track.init needs {url: \"https://your-collector\"}");
    }
    var o = {};
    for (var name in DEFAULTS) o[name] = options[name] !== undefined ? options[name] : DEFAULTS[name];
    this.options = o;
    this.url = options.url.replace(/\/+$/, "");
    this.endpoint = this.url + BATCH_PATH;
    this.prefix = o.storageKey || "track:" + this.url;
    this.anon = !!o.anonymous;
    this.events = [];       // this tab's queue: the truth; its localStorage key is a copy for the next visit
    this.id = null;         // this tab's id, once this page owns it
    this.doc = newId();     // this page's own id, in its heartbeats
    this.since = now();
    this.sending = null;    // the Promise of the send loop while it runs
    this.timer = null;
    this.failures = 0;      // failed sends since the last 201
    this.limit = o.batchSize;    // halved after a 413, and 1 to find a refused event
    this.ceiling = o.batchSize;  // the limit never grows past the size last refused (413)
    this.byteCeiling = o.maxBytes;
    this.warnedCors = false;
    this.claiming = {};
    this.local = storageArea("localStorage");
    this.session = storageArea("sessionStorage");
    this.locks = root.navigator && root.navigator.locks && typeof root.navigator.locks.request === "function"
      ? root.navigator.locks : null;
    var self = this;
    this.ready = new Promise(function (resolve) { self.settled = resolve; });
    if (root.addEventListener) {
      root.addEventListener("pagehide", function () { self.leave(); });
      root.addEventListener("pageshow", function (e) { if (e.persisted) self.back(); });
      root.addEventListener("online", function () { self.schedule(0); });
      root.addEventListener("storage", function (e) { self.changed(e); });
      if (root.document) {
        root.document.addEventListener("visibilitychange", function () {
          if (root.document.visibilityState === "hidden") self.beacon();
        });
      }
    }
    this.start();
  }

  // ---- the tab: its id, its lock, its heartbeat, and claiming the abandoned

  Tracker.prototype.key = function (what, id) { return this.prefix + ":" + what + ":" + id; };

  Tracker.prototype.start = function () {
    if (!this.local) {  // no localStorage: this page's memory only, nothing to share or claim
      this.id = newId();
      this.settled();
      return;
    }
    var id = this.session ? this.session.getItem(this.prefix + ":tab") : null;
    // A second tracker for this collector in this page: the tab's id is taken.
    if (!id || live[this.prefix]) id = newId();
    live[this.prefix] = true;
    this.own(id, true);
  };

  /** Make `id` this page's, then adopt what its queue holds.  With Web
   * Locks: hold the id's lock for the page's life.  A lock held by another
   * page is a reload's predecessor (released in a moment) or a duplicated
   * tab (sessionStorage is copied with it: the id is live elsewhere): wait
   * a little, then take a new id. */
  Tracker.prototype.own = function (id, mayWait) {
    var self = this;
    if (!this.locks) {
      var beat = readJSON(this.local, this.key("hb", id));
      if (beat && beat.doc !== this.doc && !beat.gone && now() - beat.t < this.options.staleAfter) {
        id = newId();  // a live heartbeat under our id: a duplicated tab
      }
      this.adopt(id);
      return;
    }
    var name = this.key("lock", id);
    var hold = function (lock) {
      if (!lock) return null;
      self.adopt(id);
      return new Promise(function () {});  // held until the page goes
    };
    this.locks.request(name, {ifAvailable: true}, function (lock) {
      if (lock) return hold(lock);
      if (!mayWait || typeof AbortController === "undefined") {
        self.own(newId(), false);
        return null;
      }
      var abort = new AbortController();
      var timer = setTimeout(function () { abort.abort(); }, 2 * self.options.heartbeat);
      self.locks.request(name, {signal: abort.signal}, function (l) {
        clearTimeout(timer);
        return hold(l);
      }).catch(function () {
        if (self.id === null) self.own(newId(), false);  // still held: a duplicated tab
      });
      return null;
    }).catch(function (e) {
      warn("track: the Web Locks API failed; this tab's queue is kept without a lock", e);
      self.locks = null;
      self.own(id, false);
    });
  };

  Tracker.prototype.adopt = function (id) {
    this.id = id;
    if (this.session) {
      try { this.session.setItem(this.prefix + ":tab", id); } catch (e) { /* best effort */ }
    }
    var left = readJSON(this.local, this.key("q", id));  // a reload's (or an earlier visit's) queue
    this.merge(Array.isArray(left) ? left : [], true);
    this.save();
    this.beat();
    var self = this;
    this.pulse = setInterval(function () { self.beat(); self.scan(); }, this.options.heartbeat);
    this.scan();
    this.settled();
    if (this.events.length) this.schedule(0);
  };

  /** Add events not queued yet (by MessageID): before this tab's own, or after. */
  Tracker.prototype.merge = function (events, before) {
    var queued = {};
    this.events.forEach(function (e) { queued[e.MessageID] = true; });
    var fresh = events.filter(function (e) { return e && typeof e === "object" && !queued[e.MessageID]; });
    this.events = before ? fresh.concat(this.events) : this.events.concat(fresh);
    return fresh.length;
  };

  /** Copy the queue to this tab's key: what the next visit (or another tab) finds if this one dies. */
  Tracker.prototype.save = function () {
    if (!this.local || this.id === null) return;
    var key = this.key("q", this.id);
    try {
      if (this.events.length) this.local.setItem(key, JSON.stringify(this.events));
      else this.local.removeItem(key);
    } catch (e) {
      warn("track: localStorage refused the queue; keeping it in this page only", e);
      this.local = null;
    }
  };

  Tracker.prototype.beat = function () {
    if (!this.local || this.id === null) return;
    var key = this.key("hb", this.id);
    if (!this.locks) {
      // Without locks, a duplicated tab shows as a second live heartbeat
      // under our id: the younger page takes a new id.
      var other = readJSON(this.local, key);
      if (other && other.doc !== this.doc && !other.gone && now() - other.t < this.options.staleAfter &&
          (other.since < this.since || (other.since === this.since && other.doc < this.doc))) {
        this.renew();
        return;
      }
    }
    try {
      this.local.setItem(key, JSON.stringify({t: now(), doc: this.doc, since: this.since}));
    } catch (e) { /* full: the queue's own save warns */ }
  };

  /** Take a new id (a duplicated tab without Web Locks); the old key stays its first owner's. */
  Tracker.prototype.renew = function () {
    clearInterval(this.pulse);
    this.adopt(newId());
  };

  /** Look for queues of other tabs whose heartbeat stopped, and claim them. */
  Tracker.prototype.scan = function () {
    if (!this.local || this.id === null) return;
    var mark = this.prefix + ":q:";
    var found = [];
    try {
      for (var i = 0; i < this.local.length; i++) {
        var key = this.local.key(i);
        if (key && key.indexOf(mark) === 0 && key !== mark + this.id) found.push(key.slice(mark.length));
      }
    } catch (e) {
      return;
    }
    var self = this;
    found.forEach(function (id) {
      var beat = readJSON(self.local, self.key("hb", id));
      if (!beat || beat.gone || now() - beat.t > self.options.staleAfter) self.claim(id);
    });
    // A queue left by track.js 1 (one key shared by every tab).
    if (this.local.getItem(this.prefix) !== null) this.claim(null);
  };

  Tracker.prototype.claim = function (id) {
    var name = id === null ? this.prefix + ":legacy" : this.key("lock", id);
    if (this.claiming[name]) return;
    var self = this;
    if (!this.locks) {
      this.take(id);
      return;
    }
    this.claiming[name] = true;
    this.locks.request(name, {ifAvailable: true}, function (lock) {
      if (lock) self.take(id);  // the owner is gone: nobody else can hold this lock now
    }).then(function () { delete self.claiming[name]; }, function () { delete self.claiming[name]; });
  };

  /** Move a dead tab's queue into this one's: first saved here, then removed there. */
  Tracker.prototype.take = function (id) {
    var key = id === null ? this.prefix : this.key("q", id);
    var events = readJSON(this.local, key);
    var added = this.merge(Array.isArray(events) ? events : [], false);
    this.save();
    if (!this.local) return;
    this.local.removeItem(key);
    if (id !== null) this.local.removeItem(this.key("hb", id));
    if (added) this.schedule(0);
  };

  /** Another page changed localStorage. */
  Tracker.prototype.changed = function (e) {
    if (!this.local || this.id === null || (e.storageArea && e.storageArea !== this.local)) return;
    if (e.key === this.key("q", this.id) && e.newValue === null && this.events.length) {
      this.save();  // claimed while this page slept (no Web Locks): its memory still holds the queue
    } else if (e.key === this.key("hb", this.id) && !this.locks) {
      this.beat();  // another page writes our heartbeat: a duplicated tab
    } else if (e.key && e.key.indexOf(this.prefix + ":hb:") === 0 && e.newValue && e.newValue.indexOf('"gone"') > 0) {
      this.scan();  // a tab just left: its queue may be claimed now
    }
  };

  /** The page goes away (or into the back/forward cache). */
  Tracker.prototype.leave = function () {
    this.beacon();
    if (!this.local || this.id === null) return;
    try {
      if (this.events.length) {
        this.local.setItem(this.key("hb", this.id), JSON.stringify({t: now(), doc: this.doc, gone: true}));
      } else {
        this.local.removeItem(this.key("hb", this.id));
      }
    } catch (e) { /* nothing more to do on the way out */ }
  };

  /** Back from the back/forward cache: this page's queue may have been claimed meanwhile. */
  Tracker.prototype.back = function () {
    this.save();
    this.beat();
    if (this.events.length) this.schedule(0);
  };

  // ---- the collector's kinds and rules

  /** What this page knows of the collector's rules, shared by its trackers:
   * {rules, t: when fetched, failed: when a fetch last failed, pending}.
   * Starts from what another page of the site saved, if any. */
  Tracker.prototype.book = function () {
    if (!own(books, this.url)) {
      var book = books[this.url] = {rules: null, t: 0, failed: -Infinity, pending: null};
      this.kept(book);
    }
    return books[this.url];
  };

  Tracker.prototype.fresh = function (t) {
    var age = now() - t;
    return age >= 0 && age < this.options.rulesMaxAge;
  };

  /** Take the rules another page of the site saved, if they are fresher. */
  Tracker.prototype.kept = function (book) {
    var kept = this.local ? readJSON(this.local, this.prefix + ":rules") : null;
    if (kept && kept.rules && Array.isArray(kept.rules.kinds) && typeof kept.t === "number" && kept.t > book.t &&
        this.fresh(kept.t)) {
      book.rules = kept.rules;
      book.t = kept.t;
      return true;
    }
    return false;
  };

  /** Fetch the collector's OpenAPI document, in the background: one
   * request at a time per page, and after a failure (the collector down, or
   * not readable from this page) none for maxBackoff.  Resolves with the book. */
  Tracker.prototype.learn = function () {
    var book = this.book();
    var self = this;
    if (book.pending) return book.pending;
    if (now() - book.failed < this.options.maxBackoff || this.kept(book) || typeof fetch !== "function") {
      return Promise.resolve(book);
    }
    book.pending = fetch(this.url + RULES_PATH, {credentials: "omit", mode: "cors", cache: "no-cache"})
      .then(function (response) {
        if (response.status !== 200) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (doc) {
        var rules = readRules(doc);
        if (!rules) throw new Error("no event kinds in the document");
        book.rules = rules;
        book.t = now();
        if (self.local) {
          try {
            self.local.setItem(self.prefix + ":rules", JSON.stringify({t: book.t, rules: rules}));
          } catch (e) { /* kept in this page only */ }
        }
      })
      .catch(function () { book.failed = now(); })
      .then(function () { book.pending = null; return book; });
    return book.pending;
  };

  /** Why the collector would refuse `event` ({field: why}), or null: also
   * while its rules are unknown or older than rulesMaxAge (then fetched
   * again, in the background), as the collector decides anyway. */
  Tracker.prototype.check = function (event) {
    if (!(this.options.rulesMaxAge > 0)) return null;
    var book = this.book();
    if (book.rules && this.fresh(book.t)) return refusal(book.rules, event);
    this.learn();
    return null;
  };

  /** A Promise of the names of the kinds the collector serves, in its
   * order (fetching its document if this page has no fresh copy); the last
   * known list if it cannot be read now, null if it never could. */
  Tracker.prototype.kinds = function () {
    var book = this.book();
    var known = book.rules && this.fresh(book.t) ? Promise.resolve(book) : this.learn();
    return known.then(function (b) { return b.rules ? b.rules.kinds.slice() : null; });
  };

  // ---- tracking and sending

  /** Queue one event; returns its MessageID (the one in `fields`, or a new
   * UUID), or null when the collector's rules refuse it (said with
   * console.warn; nothing is queued). */
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
      event.MessageID = newId();
    }
    if (event.Timestamp === undefined || event.Timestamp === null) {
      event.Timestamp = now();  // when it happened, by this clock; the collector corrects it with SentAt
    }
    // Queue a plain JSON copy, or refuse the event here: one value that JSON
    // cannot hold (a BigInt, a cycle) would otherwise break every later save
    // and send of the queue.
    try {
      event = JSON.parse(JSON.stringify(event));
    } catch (e) {
      throw new TypeError("track(kind, fields): fields must be JSON values (" + e.message + ")");
    }
    var refused = this.check(event);
    if (refused) {
      warn("track: the collector would refuse an event (" + JSON.stringify({fields: refused}) +
        "); not queued", event);
      return null;
    }
    if (this.events.length >= this.options.maxQueue) {
      warn("track: the queue holds " + this.events.length + " events; dropped the oldest", this.events[0]);
      this.events.shift();
    }
    if (this.anon) event[ANONYMOUS] = true;  // kept with it through reloads and claims
    this.events.push(event);
    this.save();
    this.schedule(this.events.length >= this.options.batchSize ? 0 : this.options.flushInterval);
    return event.MessageID;
  };

  /** Whether the collector may keep the client's address for the events
   * tracked from now on (true: it keeps none).  Events already queued keep
   * what was asked when they were tracked. */
  Tracker.prototype.anonymous = function (on) {
    this.anon = on === undefined ? true : !!on;
    return this;
  };

  /** A request's body: the events without their anonymous mark, which the
   * envelope (for a beacon) or the header (for fetch) carries instead. */
  function envelope(batch, inBody) {
    var body = {SentAt: now()};
    if (inBody && batch[0][ANONYMOUS]) body.Anonymous = true;
    body.events = batch;
    return JSON.stringify(body, function (key, value) { return key === ANONYMOUS ? undefined : value; });
  }

  /** Send everything queued now.  Resolves true once every event tracked
   * before the call (and every event this tab claimed) is stored (or
   * refused and dropped), false if the collector could not be reached:
   * those stay queued and are retried. */
  Tracker.prototype.flush = function () {
    var self = this;
    return this.ready.then(function () {
      var wanted = self.events.map(function (e) { return e.MessageID; });
      function left() {
        var queued = {};
        self.events.forEach(function (e) { queued[e.MessageID] = true; });
        return wanted.some(function (id) { return queued[id]; });
      }
      function step() {
        return self.run().then(function (ok) { return ok ? (left() ? step() : true) : false; });
      }
      return step();
    });
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
        self.sending = null;
        self.schedule(delay);
        return false;
      });
    }
    this.sending = loop().then(function (ok) {
      if (ok) self.sending = null;
      return ok;
    }, function (error) {
      self.sending = null;
      warn("track: unexpected error while sending", error);
      self.schedule(self.backoff(NaN));
      return false;
    });
    return this.sending;
  };

  Tracker.prototype.nextBatch = function () {
    var events = this.events;
    var batch = [];
    var bytes = ENVELOPE_BYTES;
    var limit = Math.min(this.limit, this.ceiling);
    for (var i = 0; i < events.length && batch.length < limit; i++) {
      var size = byteLength(JSON.stringify(events[i])) + 1;
      if (batch.length && bytes + size > this.byteCeiling) break;
      if (batch.length && !events[i][ANONYMOUS] !== !batch[0][ANONYMOUS]) break;  // a request is anonymous or not
      batch.push(events[i]);
      bytes += size;
    }
    return batch;
  };

  /** ms before the next try: the collector's Retry-After (at least
   * minRetryAfter) when it sent one, else exponential backoff; with
   * jitter either way, so many pages do not retry in step. */
  Tracker.prototype.backoff = function (retryAfter) {
    var o = this.options;
    this.failures += 1;
    if (!isNaN(retryAfter)) {
      var wait = Math.max(o.minRetryAfter, retryAfter);
      return wait + Math.random() * wait / 4;
    }
    var base = Math.min(o.maxBackoff, o.minBackoff * Math.pow(2, this.failures - 1));
    return base / 2 + Math.random() * base / 2;
  };

  /** One request; resolves 0 to go on at once, or the ms to wait before a retry. */
  Tracker.prototype.send = function (batch) {
    var self = this;
    var body = envelope(batch, false);
    var ids = batch.map(function (e) { return e.MessageID; });
    // text/plain is read as JSON by the collector, and needs no preflight
    // (Track-Anonymous does, from a page of another origin).
    var headers = {"Content-Type": "text/plain;charset=UTF-8"};
    if (batch[0][ANONYMOUS]) headers["Track-Anonymous"] = "1";
    var init = {
      method: "POST",
      body: body,
      headers: headers,
      credentials: "omit",
      mode: "cors",
      keepalive: byteLength(body) <= 65536
    };
    return fetch(this.endpoint, init).then(function (response) {
      var status = response.status;
      if (response.type === "opaque" || status === 0) {
        self.unreadable();
        return self.backoff(NaN);
      }
      if (status === 201) {
        self.remove(ids);
        self.failures = 0;
        self.limit = Math.min(self.ceiling, self.limit * 2);
        return 0;
      }
      return response.json().catch(function () { return null; }).then(function (answer) {
        if (RETRYABLE[status] || status >= 500) {
          return self.backoff(retryAfterMs(response.headers.get("Retry-After"), answer));
        }
        if (status === 413) return self.tooLarge(batch, byteLength(body), answer);
        return self.refused(batch, status, answer);
      });
    }, function () {
      // Offline, the collector down, or an answer the browser hid (CORS).
      self.probe();
      return self.backoff(NaN);
    });
  };

  Tracker.prototype.remove = function (ids) {
    if (!ids.length) return;
    var gone = {};
    ids.forEach(function (id) { gone[id] = true; });
    this.events = this.events.filter(function (e) { return !gone[e.MessageID]; });
    this.save();
  };

  /** A 413, from the batch route or from a limit checked before it: the
   * batch is halved, and the limit never grows back past what was refused
   * (nor past the limits the answer names). */
  Tracker.prototype.tooLarge = function (batch, bytes, answer) {
    if (batch.length === 1) return this.refused(batch, 413, answer);
    var named = answer && typeof answer === "object" ? answer : {};
    this.ceiling = Math.max(1, Math.min(this.ceiling, batch.length - 1,
      typeof named.max_events === "number" ? named.max_events : Infinity));
    this.byteCeiling = Math.max(256, Math.min(this.byteCeiling, bytes - 1,
      typeof named.max_bytes === "number" ? named.max_bytes : Infinity));
    this.limit = Math.max(1, Math.floor(batch.length / 2));
    return 0;
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
        // Nothing named (a refusal of the whole body): go one event at a
        // time until the one at fault is found.
        this.limit = 1;
        return 0;
      }
      drop.push(batch[0].MessageID);
      warn("track: the collector refused an event (HTTP " + status + ": " + JSON.stringify(answer) +
        "); dropped it", batch[0]);
    }
    this.remove(drop);
    return 0;
  };

  /** A send failed without an answer.  Ask again without CORS: if the
   * collector answers that, it is up and the browser hides its answers
   * from this page, which only the collector's --cors-origin can change. */
  Tracker.prototype.probe = function () {
    if (this.warnedCors || this.probing || typeof fetch !== "function") return;
    if (root.navigator && root.navigator.onLine === false) return;
    var self = this;
    this.probing = true;
    // A GET of the collector's script: it stores nothing and counts nothing;
    // any answer at all (even a 404 from a proxy) means it is reachable.
    fetch(this.url + "/track.js", {mode: "no-cors", credentials: "omit", cache: "no-store"})
      .then(function () { self.unreadable(); }, function () { /* really unreachable */ })
      .then(function () { self.probing = false; });
  };

  Tracker.prototype.unreadable = function () {
    if (this.warnedCors) return;
    this.warnedCors = true;
    var origin = root.location && root.location.origin ? root.location.origin : "this page's origin";
    warn("track: the collector at " + this.url + " answers, but the browser hides its answers from this page " +
      "(CORS), so no event can be seen stored and the queue is sent again and again: start the collector with " +
      "--cors-origin " + origin);
  };

  /** The page is going away (or hidden): hand what is queued to the
   * browser, which sends it even after the page is gone.  The events stay
   * queued until a 201 is seen, so a beacon that never arrives is sent again
   * (by this tab, by the one that claims its queue, or on the next visit);
   * one that did arrive is not stored twice. */
  Tracker.prototype.beacon = function () {
    var nav = root.navigator;
    if (!nav || typeof nav.sendBeacon !== "function") return;
    var events = this.events;
    var chunk = [];
    var bytes = ENVELOPE_BYTES;
    for (var i = 0; i <= events.length; i++) {
      var size = i < events.length ? byteLength(JSON.stringify(events[i])) + 1 : 0;
      if (chunk.length && (i === events.length || bytes + size > this.byteCeiling ||
                           chunk.length >= this.ceiling || !events[i][ANONYMOUS] !== !chunk[0][ANONYMOUS])) {
        // A string body goes as text/plain;charset=UTF-8: no preflight.
        if (!nav.sendBeacon(this.endpoint, envelope(chunk, true))) return;  // quota
        chunk = [];
        bytes = ENVELOPE_BYTES;
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
    version: "3"
  };
});
