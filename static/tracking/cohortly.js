/* Cohortly tracking snippet. Source of /sdk/cohortly.js (served minified from
 * cohortly.min.js, rebuilt by `manage.py build_snippet`). Speaks the Segment
 * HTTP Tracking API of the server it is loaded from: POST {host}/v1/batch.
 * Shows the visitor's on-site messages from POST {host}/v1/messages.
 * Makes no request to anything but that host. */
(function (w, d, nav) {
  "use strict";
  var stub = w.cohortly || [];
  if (stub.loaded) return;
  var me = d.currentScript;
  var key = stub.writeKey || (me && me.dataset.writeKey);
  if (!key) return;
  var opt = stub.options || {};
  var host = (stub.host || new URL(me.src).origin).replace(/\/+$/, "");
  var VERSION = "1.0.0";
  var SESSION_MS = 18e5; // a new session after 30 minutes without an event
  var QMAX = opt.queueSize || 100; // messages kept for retry, oldest dropped first
  var BODY_MAX = 6e4; // keepalive fetch and sendBeacon refuse bodies over 64 KiB
  var MSG_MAX = 32768; // the server refuses messages over 32 KiB
  var FLUSH_AT = opt.flushAt || 20;
  var FLUSH_MS = opt.flushInterval || 1000;
  // After a route change, how long the page view waits for the new page's title, and how long a
  // title that keeps changing may delay it.
  var TITLE_MS = 300, TITLE_MAX_MS = 1000;
  var QK = "cly_q:" + key, CK = "cly_cfg:" + key;
  var store = null;
  try { store = w.localStorage; } catch (e) { /* storage disabled: the page keeps state in memory */ }
  var mem = {}; // stands in for localStorage where it is unavailable
  var inflight = {}; // messageIds this page is sending right now
  var timer = 0, busy = 0, fails = 0;
  var triggers = [], fired = {}, engaged = 0, engageTimer = 0;
  var lastUrl = w.location.href, referrer = d.referrer;
  var view = null; // the page view of a route change, waiting for its title
  var readyFns = [], isReady = 0;
  var shown = {}, box = null, msgWait = 0; // on-site messages: shown on this page, the one on screen
  var last = 0; // the messageId of the message send() queued last (0: it queued none)

  // localStorage, or memory where it is refused or full (what is in memory wins).
  function get(k) {
    if (k in mem) return mem[k];
    try { return store.getItem(k); } catch (e) { return null; }
  }
  function set(k, v) {
    try {
      if (v == null) store.removeItem(k); else store.setItem(k, v);
      delete mem[k];
    } catch (e) {
      mem[k] = v == null ? null : v;
    }
  }
  function json(s) {
    try { return JSON.parse(s); } catch (e) { return null; }
  }
  function uuid() {
    var c = w.crypto;
    if (c.randomUUID) return c.randomUUID();
    return "10000000-1000-4000-8000-100000000000".replace(/[018]/g, function (n) {
      return (n ^ (c.getRandomValues(new Uint8Array(1))[0] & (15 >> (n / 4)))).toString(16);
    });
  }
  function bytes(s) {
    return new Blob([s]).size;
  }

  // The anonymous id: a first-party cookie, with localStorage as the fallback.
  // Cookies can be blocked (sandboxed frames, browser settings): then localStorage alone keeps the id.
  function cookie(v) {
    try {
      if (v === undefined) {
        var m = d.cookie.match(/(?:^|; )cly_aid=([^;]+)/);
        return m && decodeURIComponent(m[1]);
      }
      d.cookie = "cly_aid=" + (v ? encodeURIComponent(v) : "") + "; path=/; SameSite=Lax; max-age=" +
        (v ? 31536000 : 0) + (opt.cookieDomain ? "; domain=" + opt.cookieDomain : "") +
        (w.location.protocol == "https:" ? "; Secure" : "");
    } catch (e) {
      return null;
    }
  }
  function anonymousId() {
    var id = cookie() || get("cly_aid");
    if (!id) id = uuid();
    cookie(id);
    set("cly_aid", id);
    return id;
  }
  function sessionId(now) {
    var s = (get("cly_ses") || "").split("|");
    var id = s[1] && now - s[1] < SESSION_MS ? s[0] : uuid();
    set("cly_ses", id + "|" + now);
    return id;
  }

  // Opted out, or Do-Not-Track honoured and not overridden by optIn().
  function blocked() {
    var o = get("cly_out");
    if (o == "1") return true;
    if (o == "0" || !opt.honorDNT) return false;
    return nav.doNotTrack == "1" || w.doNotTrack == "1" || nav.globalPrivacyControl === true;
  }

  // The retry queue: every message waits in localStorage until a 2xx answer.
  function queue() {
    return json(get(QK)) || [];
  }
  function save(q) {
    if (q.length > QMAX) q.splice(0, q.length - QMAX);
    set(QK, q.length ? JSON.stringify(q) : null);
  }
  function drop(ids) {
    save(queue().filter(function (m) { return !ids[m.messageId]; }));
  }
  function schedule(ms) {
    if (timer && ms) return;
    clearTimeout(timer);
    timer = setTimeout(flush, ms);
  }
  // Messages not in flight, as many as fit in one body.
  function take() {
    var out = [], size = 0;
    queue().some(function (m) {
      if (inflight[m.messageId]) return false;
      var n = bytes(JSON.stringify(m)) + 1;
      if (out.length && size + n > BODY_MAX - 200) return true;
      out.push(m);
      size += n;
      return out.length >= 100;
    });
    return out;
  }
  function body(batch) {
    var now = new Date().toISOString();
    batch.forEach(function (m) { m.sentAt = now; });
    return JSON.stringify({ batch: batch, sentAt: now, writeKey: key });
  }
  function ids(batch) {
    var o = {};
    batch.forEach(function (m) { o[m.messageId] = 1; });
    return o;
  }
  function flush() {
    clearTimeout(timer);
    timer = 0;
    if (busy || blocked()) return;
    if (nav.onLine === false) return schedule(backoff());
    var batch = take();
    if (!batch.length) return;
    var sending = ids(batch);
    busy = 1;
    Object.assign(inflight, sending);
    fetch(host + "/v1/batch", {
      method: "POST", body: body(batch), keepalive: true, credentials: "omit",
      headers: { "Content-Type": "text/plain" },
    }).then(function (r) {
      // Retry server trouble and throttling; any other answer is final for these messages.
      if (r.status >= 500 || r.status == 429 || r.status == 408) throw r.status;
      fails = 0;
      drop(sending);
      // The identify is stored (not just any batch in flight when it was called): the visitor's
      // messages may be the user's now.
      if (msgWait && sending[msgWait]) { msgWait = 0; messages(); }
    }).catch(function () {
      fails++;
    }).then(function () {
      busy = 0;
      for (var id in sending) delete inflight[id];
      if (queue().length) schedule(fails ? backoff() : 0);
    });
  }
  function backoff() {
    return Math.min(1000 * Math.pow(2, fails), 6e4) * (0.5 + Math.random() / 2);
  }
  // The page is going away: hand what is left to sendBeacon, which outlives it.
  function beacon() {
    if (!nav.sendBeacon || nav.onLine === false || blocked()) return;
    for (var batch = take(); batch.length; batch = take()) {
      if (!nav.sendBeacon(host + "/v1/batch", body(batch))) return;
      drop(ids(batch));
    }
  }

  function page() {
    var l = w.location;
    return { url: l.href, path: l.pathname, referrer: referrer, title: d.title, search: l.search };
  }
  // ``pg`` and ``at``: the page and the time of a page view sent after its route change settled.
  function send(type, fields, props, pg, at) {
    last = 0;
    if (blocked()) return api;
    var now = at || Date.now(), sid = sessionId(now), m = {
      type: type, messageId: uuid(), anonymousId: anonymousId(), timestamp: new Date(now).toISOString(),
      context: {
        page: pg || page(), library: { name: "cohortly.js", version: VERSION }, userAgent: nav.userAgent,
        locale: nav.language, screen: { width: w.screen.width, height: w.screen.height }, sessionId: sid,
      },
    };
    var uid = get("cly_uid");
    if (uid) m.userId = uid;
    Object.assign(m, fields);
    if (props) m.properties = Object.assign({}, props, { $session_id: sid });
    if (bytes(JSON.stringify(m)) > MSG_MAX) return api;
    var q = queue();
    q.push(m);
    last = m.messageId;
    save(q);
    schedule(q.length >= FLUSH_AT ? 0 : FLUSH_MS);
    return api;
  }
  function obj(v) {
    return v && typeof v == "object" ? v : {};
  }

  var api = {
    loaded: 1,
    identify: function (userId, traits) {
      if (typeof userId == "object" && userId) { traits = userId; userId = null; }
      if (userId != null && !blocked()) set("cly_uid", String(userId));
      send("identify", { traits: obj(traits) });
      msgWait = last;
      return api;
    },
    track: function (event, properties) {
      return send("track", { event: String(event) }, obj(properties));
    },
    page: function (name, properties) {
      if (typeof name == "object" && name) { properties = name; name = null; }
      var f = name == null ? {} : { name: String(name) };
      return send("page", f, Object.assign(page(), obj(properties)));
    },
    alias: function (userId, previousId) {
      if (blocked()) return api;
      return send("alias", { userId: String(userId), previousId: previousId || get("cly_uid") || anonymousId() });
    },
    group: function (groupId, traits) {
      return send("group", { groupId: String(groupId), traits: obj(traits) });
    },
    reset: function () {
      ["cly_uid", "cly_aid", "cly_ses"].forEach(function (k) { set(k, null); });
      cookie("");
      return api;
    },
    ready: function (fn) {
      if (isReady) setTimeout(fn, 0); else readyFns.push(fn);
      return api;
    },
    optOut: function () {
      set("cly_out", "1");
      set(QK, null);
      return api;
    },
    optIn: function () {
      set("cly_out", "0");
      return api;
    },
    flush: function () {
      flush();
      return api;
    },
  };

  // Triggers configured in the workspace: clicks, scroll depth, engaged time.
  function fire(t, n, props) {
    var k = t.event + "|" + n;
    if (fired[k]) return;
    fired[k] = 1;
    api.track(t.event, props);
  }
  function kind(k) {
    return triggers.filter(function (t) { return t.kind == k; });
  }
  function onClick(e) {
    kind("click").forEach(function (t) {
      var el;
      try { el = e.target.closest(t.selector); } catch (x) { return; }
      if (el) {
        api.track(t.event, {
          selector: t.selector, text: (el.innerText || "").trim().slice(0, 200), href: el.href || undefined,
        });
      }
    });
  }
  function onScroll() {
    var h = d.documentElement.scrollHeight, pct = h ? ((w.scrollY + w.innerHeight) / h) * 100 : 0;
    kind("scroll").forEach(function (t) {
      t.thresholds.forEach(function (n) {
        if (pct + 0.5 >= n) fire(t, n, { depth: n });
      });
    });
  }
  function tick() {
    if (d.visibilityState != "visible" || !d.hasFocus()) return;
    engaged++;
    kind("engaged_time").forEach(function (t) {
      t.thresholds.forEach(function (n) {
        if (engaged >= n) fire(t, n, { seconds: n });
      });
    });
  }
  function apply(cfg) {
    triggers = (cfg && cfg.triggers) || [];
    if (kind("engaged_time").length && !engageTimer) engageTimer = setInterval(tick, 1000);
  }
  function config() {
    var c = json(get(CK));
    if (c && Date.now() < c.until) return apply(c.v);
    fetch(host + "/v1/config?writeKey=" + encodeURIComponent(key), { credentials: "omit" })
      .then(function (r) {
        if (!r.ok) throw r.status;
        return r.json();
      })
      .then(function (v) {
        set(CK, JSON.stringify({ v: v, until: Date.now() + 1000 * (v.ttl || 300) }));
        apply(v);
      }, function () {
        if (c) apply(c.v);
      });
  }

  // Single-page apps: a new URL (not just a new #hash) is a new page view. Routers set the new
  // page's title after changing the URL (at once, a frame or a fetch later; on Back too), so the
  // view keeps the URL and time of the change and takes the title once it has changed and held
  // still for a moment, or after TITLE_MS if it does not change.
  function navigated() {
    var now = w.location.href;
    if (now.split("#")[0] == lastUrl.split("#")[0]) return;
    settle();
    referrer = lastUrl;
    lastUrl = now;
    fired = {};
    engaged = 0;
    if (opt.autoPage === false) return;
    var v = view = { pg: page(), at: Date.now(), title: d.title };
    v.timer = setTimeout(settle, TITLE_MS);
    if (w.MutationObserver) {
      v.watch = new MutationObserver(function () {
        if (d.title == v.title) return;
        v.title = d.title;
        clearTimeout(v.timer);
        v.timer = setTimeout(settle, Date.now() - v.at > TITLE_MAX_MS ? 0 : 50);
      });
      v.watch.observe(d.head || d.documentElement, { subtree: true, childList: true, characterData: true });
    }
  }
  // Send the waiting page view, with the title as it is now.
  function settle() {
    var v = view;
    if (!v) return;
    view = null;
    clearTimeout(v.timer);
    if (v.watch) v.watch.disconnect();
    v.pg.title = d.title;
    send("page", {}, v.pg, v.pg, v.at);
  }
  ["pushState", "replaceState"].forEach(function (name) {
    var orig = w.history[name];
    w.history[name] = function () {
      var r = orig.apply(this, arguments);
      navigated();
      return r;
    };
  });
  w.addEventListener("popstate", navigated);
  w.addEventListener("pagehide", function () {
    settle();
    beacon();
  });
  d.addEventListener("visibilitychange", function () {
    if (d.visibilityState == "hidden") {
      settle();
      beacon();
    }
  });
  w.addEventListener("online", function () {
    fails = 0;
    flush();
  });
  d.addEventListener("click", onClick, true);
  w.addEventListener("scroll", onScroll, { passive: true });

  // On-site messages: the visitor's, from the same host, one at a time, in plain DOM (text through
  // textContent only; a link only when it is http or https). Seen, clicked and dismissed are
  // reported to the host, which records them as Message Viewed / Clicked / Dismissed events.
  function post(path) {
    return fetch(host + "/v1/messages" + path, {
      method: "POST", keepalive: true, credentials: "omit", headers: { "Content-Type": "text/plain" },
      body: JSON.stringify({ writeKey: key, anonymousId: anonymousId(), userId: get("cly_uid") || undefined }),
    });
  }
  function messages() {
    if (opt.messages === false || box || blocked()) return;
    post("").then(function (r) {
      if (!r.ok) throw r.status;
      return r.json();
    }).then(function (v) {
      show((v.messages || []).filter(function (m) { return !shown[m.id]; })[0]);
    }, function () {});
  }
  function el(tag, css, text) {
    var e = d.createElement(tag);
    e.style.cssText = css;
    if (text) e.textContent = text;
    return e;
  }
  function show(m) {
    if (!m || box) return;
    shown[m.id] = 1;
    var modal = m.format == "modal", card, a, x;
    function act(what) {
      post("/" + m.id + "/" + what).catch(function () {});
    }
    function close() {
      box.remove();
      box = null;
    }
    box = el("div", "position:fixed;z-index:2147483647;left:0;right:0;top:0;" +
      (modal ? "bottom:0;background:rgba(0,0,0,.45);display:flex;align-items:center;justify-content:center" : ""));
    card = el("div", "position:relative;box-sizing:border-box;background:#fff;color:#1a1a1a;" +
      "font:15px/1.45 system-ui,sans-serif;padding:14px 48px 14px 16px;box-shadow:0 2px 14px rgba(0,0,0,.25);" +
      (modal ? "width:440px;max-width:calc(100% - 32px);border-radius:10px;padding:20px 48px 20px 20px" : ""));
    card.setAttribute("role", modal ? "dialog" : "status");
    card.setAttribute("data-cohortly-message", m.id);
    if (m.title) card.appendChild(el("strong", "display:block;margin-bottom:4px", m.title));
    if (m.body) card.appendChild(el("div", "white-space:pre-line;overflow-wrap:anywhere", m.body));
    if (/^https?:\/\//i.test(m.link_url || "")) {
      a = el("a", "display:inline-block;margin-top:8px;color:#1d4ed8;font-weight:600", m.link_text || m.link_url);
      a.href = m.link_url;
      a.onclick = function () {
        act("clicked");
        close();
      };
      card.appendChild(a);
    }
    x = el("button", "position:absolute;top:6px;right:6px;width:36px;height:36px;border:0;background:none;" +
      "font-size:22px;line-height:1;cursor:pointer;color:#555", "\u00d7");
    x.type = "button";
    x.setAttribute("aria-label", "Dismiss");
    x.onclick = function () {
      act("dismissed");
      close();
      messages();
    };
    card.appendChild(x);
    box.appendChild(card);
    (d.body || d.documentElement).appendChild(box);
    // A modal takes the focus to its dismiss button; Escape dismisses it.
    if (modal) {
      x.focus();
      box.onkeydown = function (e) {
        if (e.key == "Escape") x.onclick();
      };
    }
    act("viewed");
  }

  // Replace the stub in place: calls queued before load run first, in order,
  // and code that kept a reference to the stub keeps working.
  var pending = Array.isArray(stub) ? stub.splice(0) : [];
  Object.assign(stub, api);
  stub.push = function (c) {
    if (typeof api[c[0]] == "function") api[c[0]].apply(api, c.slice(1));
  };
  api = stub;
  w.cohortly = stub;
  pending.forEach(stub.push);
  if (opt.autoPage !== false) api.page();
  config();
  messages();
  if (queue().length) schedule(0);
  isReady = 1;
  readyFns.forEach(function (fn) { setTimeout(fn, 0); });
})(window, document, navigator);
