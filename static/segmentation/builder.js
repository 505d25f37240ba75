// The segment builder: edits the definition document (segment-definition.md) visually.
// No build step, no framework. The document itself is the state: every control reads and writes
// the JSON object in place, so the JSON view and the visual editor always show the same document.
// Data from the workspace (event names, keys, values, people) is only ever set with textContent.
(function () {
  "use strict";

  var root = document.querySelector("[data-builder]");
  if (!root) return;

  function readJson(id, fallback) {
    var el = document.getElementById(id);
    if (!el) return fallback;
    try { return JSON.parse(el.textContent); } catch (e) { return fallback; }
  }

  var readonly = root.hasAttribute("data-readonly");
  var catalogueUrl = root.getAttribute("data-catalogue-url");
  var previewUrl = root.getAttribute("data-preview-url");
  var selfId = root.getAttribute("data-segment-id") ? Number(root.getAttribute("data-segment-id")) : null;
  var segments = readJson("builder-segments", []);
  var doc = readJson("builder-definition", null) || { type: "and", conditions: [] };
  var serverErrors = readJson("builder-errors", []);
  var hidden = document.getElementById("id_definition");
  var editor = document.getElementById("builder-editor");
  var jsonArea = document.getElementById("builder-json-text");
  var jsonPane = document.getElementById("builder-json");
  var visualPane = document.getElementById("builder-visual");
  var jsonError = document.getElementById("builder-json-error");
  var csrf = (function () {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
  })();

  var showAllErrors = serverErrors.length > 0;
  var touched = {};
  var lastErrors = serverErrors;
  var uid = 0;
  var pendingFocus = null;
  var mode = "visual";

  // --- Vocabulary -----------------------------------------------------------------------

  var KINDS = [
    ["did", "did an event"],
    ["did_not", "did not do"],
    ["aggregate", "total of a property"],
    ["first", "first did"],
    ["last", "last did"],
    ["regular", "did regularly"],
    ["then", "did A then B"],
    ["dropped", "dropped off between A and B"],
    ["trait", "has a trait"],
    ["segment", "is in segment"]
  ];
  var FILTER_OPS = [
    ["eq", "is"], ["neq", "is not"], ["in", "is one of"], ["not_in", "is none of"],
    ["contains", "contains"], ["not_contains", "does not contain"], ["starts_with", "starts with"],
    ["ends_with", "ends with"], ["gt", "greater than"], ["gte", "at least"], ["lt", "less than"],
    ["lte", "at most"], ["between", "between"], ["before", "before"], ["after", "after"],
    ["is_set", "is set"], ["is_not_set", "is not set"]
  ];
  var COUNT_OPS = [
    ["gte", "at least"], ["lte", "at most"], ["eq", "exactly"], ["gt", "more than"], ["lt", "fewer than"],
    ["neq", "not exactly"], ["between", "between"]
  ];
  var NUMBER_OPS = [
    ["gte", "at least"], ["lte", "at most"], ["eq", "exactly"], ["gt", "more than"], ["lt", "less than"],
    ["neq", "other than"], ["between", "between"]
  ];
  var FUNCTIONS = [["sum", "total"], ["avg", "average"], ["min", "lowest"], ["max", "highest"]];
  var UNITS = [["m", "minutes"], ["h", "hours"], ["d", "days"], ["w", "weeks"]];
  var WINDOW_MODES = [
    ["any", "at any time"], ["last", "in the last"], ["between", "between"], ["more", "more than"],
    ["custom", "from / to (dates)"]
  ];
  var NUMERIC_FILTER_OPS = { gt: 1, gte: 1, lt: 1, lte: 1 };

  // --- DOM helpers ----------------------------------------------------------------------

  function h(tag, attrs, children) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "text") el.textContent = value;
        else if (key === "class") el.className = value;
        else if (key.slice(0, 2) === "on") el.addEventListener(key.slice(2), value);
        else el.setAttribute(key, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      el.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return el;
  }

  function nextId(prefix) { uid += 1; return prefix + "-" + uid; }

  function join(path, part) {
    if (typeof part === "number") return path + "[" + part + "]";
    return path ? path + "." + part : part;
  }

  function select(options, value, label, onChange, extra) {
    var id = nextId("bs");
    var el = h("select", Object.assign({ id: id, "aria-label": label, disabled: readonly }, extra || {}));
    var known = false;
    options.forEach(function (option) {
      var o = h("option", { value: option[0], text: option[1] });
      if (String(option[0]) === String(value)) { o.selected = true; known = true; }
      el.appendChild(o);
    });
    if (!known && value !== undefined && value !== null && value !== "") {
      var custom = h("option", { value: value, text: String(value) });
      custom.selected = true;
      el.appendChild(custom);
    }
    el.addEventListener("change", function () { onChange(el.value); });
    return el;
  }

  function numberInput(value, label, onInput, extra) {
    var el = h("input", Object.assign({
      type: "number", inputmode: "numeric", class: "bf-num", value: value === undefined ? "" : value,
      "aria-label": label, disabled: readonly
    }, extra || {}));
    el.addEventListener("input", function () { onInput(el.value === "" ? null : Number(el.value)); });
    return el;
  }

  function field(path, children, cls) {
    return h("span", { class: "bf" + (cls ? " " + cls : ""), "data-path": path }, children);
  }

  function words(text) { return h("span", { class: "bw", text: text }); }

  function iconButton(label, symbol, onClick, extra) {
    return h("button", Object.assign({
      type: "button", class: "btn btn-ghost btn-small bt-icon", "aria-label": label, title: label, onclick: onClick
    }, extra || {}), [h("span", { "aria-hidden": "true", text: symbol })]);
  }

  // --- Autocomplete (ARIA combobox with a list popup) -----------------------------------

  var cache = {};
  function suggestions(params, done) {
    var query = Object.keys(params).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(params[k] || "");
    }).join("&");
    var url = catalogueUrl + "?" + query;
    if (cache[url]) { done(cache[url]); return; }
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { results: [] }; })
      .then(function (data) { cache[url] = data.results || []; done(cache[url]); })
      .catch(function () { done([]); });
  }

  // A text input that suggests values from the catalogue. ``params()`` gives the catalogue query;
  // ``extra`` lists fixed first suggestions ([value, label]).
  function combobox(opts) {
    var listId = nextId("lb");
    var wrap = h("span", { class: "combo" });
    var input = h("input", {
      type: "text", role: "combobox", "aria-autocomplete": "list", "aria-expanded": "false",
      "aria-controls": listId, "aria-label": opts.label, autocomplete: "off", spellcheck: "false",
      value: opts.value === undefined || opts.value === null ? "" : String(opts.value),
      placeholder: opts.placeholder || "", class: opts.cls || "", disabled: readonly
    });
    if (opts.focusKey) input.setAttribute("data-focus-key", opts.focusKey);
    var list = h("ul", { id: listId, role: "listbox", class: "combo-list", hidden: true, "aria-label": opts.label });
    var items = [];
    var active = -1;
    var timer = null;
    var seq = 0;

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }
    function highlight(index) {
      items.forEach(function (li, i) { li.setAttribute("aria-selected", i === index ? "true" : "false"); });
      active = index;
      if (index >= 0 && items[index]) {
        input.setAttribute("aria-activedescendant", items[index].id);
        items[index].scrollIntoView({ block: "nearest" });
      } else input.removeAttribute("aria-activedescendant");
    }
    function choose(value) {
      seq += 1;  // a suggestion list still on its way must not reopen over the choice
      clearTimeout(timer);
      input.value = value;
      close();
      opts.onPick(value);
    }
    function show(results) {
      list.replaceChildren();
      items = [];
      var fixed = (opts.extra || []).filter(function (pair) {
        return !input.value || pair[1].toLowerCase().indexOf(input.value.toLowerCase()) >= 0 ||
          pair[0].toLowerCase().indexOf(input.value.toLowerCase()) >= 0;
      });
      var all = fixed.map(function (pair) { return { value: pair[0], label: pair[1] }; })
        .concat(results.map(function (r) { return { value: r.value, count: r.count, type: r.type }; }));
      all.forEach(function (entry) {
        var li = h("li", { role: "option", id: nextId("opt"), "aria-selected": "false", class: "combo-option" }, [
          h("span", { class: "combo-value", text: entry.label || entry.value }),
          entry.count !== undefined ? h("span", { class: "combo-count", text: entry.count.toLocaleString() }) : null
        ]);
        li.addEventListener("mousedown", function (event) { event.preventDefault(); choose(entry.value); });
        list.appendChild(li);
        items.push(li);
        li.dataset.value = entry.value;
        if (entry.type) li.dataset.type = entry.type;
      });
      if (!items.length) {
        list.appendChild(h("li", { class: "combo-empty", role: "presentation", text: opts.emptyText || "Nothing seen yet that matches" }));
      }
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      highlight(-1);
    }
    function refresh() {
      var mine = ++seq;
      var params = opts.params();
      params.q = input.value;
      suggestions(params, function (results) {
        if (mine === seq && document.activeElement === input) show(results);
      });
    }
    input.addEventListener("input", function () {
      opts.onInput(input.value);
      clearTimeout(timer);
      timer = setTimeout(refresh, 90);
    });
    input.addEventListener("focus", function () { if (!readonly) refresh(); });
    input.addEventListener("blur", function () { close(); touch(opts.path); });
    input.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown") {
        event.preventDefault();
        if (list.hidden) { refresh(); return; }
        highlight(Math.min(items.length - 1, active + 1));
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        highlight(Math.max(-1, active - 1));
      } else if (event.key === "Enter") {
        if (!list.hidden && active >= 0 && items[active]) {
          event.preventDefault();
          choose(items[active].dataset.value);
        } else if (opts.onEnter) {
          event.preventDefault();
          opts.onEnter(input.value);
        } else if (!list.hidden) {
          event.preventDefault();
          close();
        } else {
          event.preventDefault();
        }
      } else if (event.key === "Escape") {
        if (!list.hidden) { event.preventDefault(); close(); }
      } else if (event.key === "Backspace" && opts.onBackspaceEmpty && input.value === "") {
        opts.onBackspaceEmpty();
      }
    });
    wrap.appendChild(input);
    wrap.appendChild(list);
    wrap.input = input;
    return wrap;
  }

  // --- Values ---------------------------------------------------------------------------

  // Text typed into a value field becomes a number when it reads as one and the key holds numbers
  // (or the operator compares numbers), a boolean for true/false on boolean keys, else a string.
  var keyTypes = {};
  function coerce(text, keyType, numeric) {
    var trimmed = String(text).trim();
    var isNumber = trimmed !== "" && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(trimmed);
    if (isNumber && (numeric || keyType === "number")) return Number(trimmed);
    if (keyType === "boolean" && (trimmed === "true" || trimmed === "false")) return trimmed === "true";
    return text;
  }

  function keyTypeFor(source, eventName, key) { return keyTypes[source + "\u0000" + (eventName || "") + "\u0000" + key] || ""; }
  function rememberType(source, eventName, key) {
    suggestions({ kind: "keys", source: source, event: eventName || "", q: key }, function (results) {
      results.forEach(function (r) {
        if (r.type) keyTypes[source + "\u0000" + (eventName || "") + "\u0000" + r.value] = r.type;
      });
    });
  }

  function chips(filter, path, source, eventName) {
    if (!Array.isArray(filter.value)) filter.value = filter.value === undefined || filter.value === null || filter.value === "" ? [] : [filter.value];
    var box = h("span", { class: "chips" });
    function redraw(focusInput) {
      box.replaceChildren();
      filter.value.forEach(function (value, index) {
        box.appendChild(h("span", { class: "chip" }, [
          h("span", { class: "chip-text", text: String(value) }),
          readonly ? null : h("button", {
            type: "button", class: "chip-remove", "aria-label": "Remove " + String(value),
            onclick: function () { filter.value.splice(index, 1); changed(); redraw(true); }
          }, [h("span", { "aria-hidden": "true", text: "×" })])
        ]));
      });
      if (readonly) return;
      var add = function (text) {
        if (String(text).trim() === "") return;
        var value = coerce(text, keyTypeFor(source, eventName, filter.key), false);
        if (filter.value.indexOf(value) < 0) filter.value.push(value);
        changed();
        redraw(true);
      };
      var combo = combobox({
        label: "Add a value for " + (filter.key || "this property"), placeholder: filter.value.length ? "add another…" : "type a value, Enter to add",
        value: "", path: join(path, "value"), cls: "chip-input",
        params: function () { return { kind: "values", source: source, event: eventName || "", key: filter.key || "" }; },
        onInput: function () {}, onPick: function (value) { add(value); }, onEnter: add,
        onBackspaceEmpty: function () { if (filter.value.length) { filter.value.pop(); changed(); redraw(true); } }
      });
      box.appendChild(combo);
      if (focusInput) combo.input.focus();
    }
    redraw(false);
    return box;
  }

  function valueEditor(filter, path, source, eventName) {
    var op = filter.operator;
    var vpath = join(path, "value");
    if (op === "is_set" || op === "is_not_set") return null;
    if (op === "in" || op === "not_in") return field(vpath, [chips(filter, path, source, eventName)], "bf-grow");
    if (op === "between") {
      if (!Array.isArray(filter.value) || filter.value.length !== 2) filter.value = [0, 100];
      return field(vpath, [
        numberInput(filter.value[0], "From", function (v) { filter.value[0] = v; changed(); }),
        words("and"),
        numberInput(filter.value[1], "To", function (v) { filter.value[1] = v; changed(); })
      ]);
    }
    if (NUMERIC_FILTER_OPS[op]) {
      return field(vpath, [numberInput(filter.value, "Value of " + (filter.key || "the property"), function (v) { filter.value = v; changed(); })]);
    }
    if (op === "before" || op === "after") {
      var input = h("input", {
        type: "text", value: filter.value === undefined || filter.value === null ? "" : String(filter.value),
        placeholder: "2026-05-01 or 30d", "aria-label": "Date or duration", disabled: readonly
      });
      input.addEventListener("input", function () { filter.value = input.value; changed(); });
      input.addEventListener("blur", function () { touch(vpath); });
      return field(vpath, [input]);
    }
    return field(vpath, [combobox({
      label: "Value of " + (filter.key || "the property"), value: filter.value, path: vpath, placeholder: "value",
      params: function () { return { kind: "values", source: source, event: eventName || "", key: filter.key || "" }; },
      onInput: function (text) { filter.value = coerce(text, keyTypeFor(source, eventName, filter.key), false); changed(); },
      onPick: function (text) { filter.value = coerce(text, keyTypeFor(source, eventName, filter.key), false); changed(); }
    })], "bf-grow");
  }

  function operatorChange(filter, op, rerender) {
    var wasList = filter.operator === "in" || filter.operator === "not_in";
    var isList = op === "in" || op === "not_in";
    filter.operator = op;
    if (op === "is_set" || op === "is_not_set") delete filter.value;
    else if (isList && !wasList) filter.value = filter.value === undefined || filter.value === null || filter.value === "" ? [] : [filter.value];
    else if (!isList && wasList) filter.value = Array.isArray(filter.value) && filter.value.length ? filter.value[0] : "";
    else if (op === "between") filter.value = [0, 100];
    else if (NUMERIC_FILTER_OPS[op] && typeof filter.value !== "number") {
      var n = Number(filter.value);
      filter.value = filter.value !== "" && !isNaN(n) ? n : null;
    }
    rerender();
  }

  // A property condition: key, operator, value. Used by filters (source "event") and traits.
  function propertyEditor(spec, path, source, eventName, label, focusKey) {
    var keyCombo = combobox({
      label: label, value: spec.key, path: join(path, "key"), placeholder: source === "trait" ? "trait, e.g. plan" : "property",
      focusKey: focusKey,
      params: function () { return { kind: "keys", source: source, event: eventName || "" }; },
      onInput: function (text) { spec.key = text; relabel(); changed(); },
      onPick: function (text) { spec.key = text; rememberType(source, eventName, text); relabel(); drawValue(); changed(); }
    });
    var holder = h("span", { class: "bf-value-slot" });
    // Labels name the key, so that each value field says what it is the value of.
    function relabel() {
      opSelect.setAttribute("aria-label", "Comparison for " + (spec.key || "the property"));
      Array.prototype.forEach.call(holder.querySelectorAll("[aria-label^='Value of '], [aria-label^='Add a value for ']"), function (el) {
        var prefix = el.getAttribute("aria-label").indexOf("Add a value") === 0 ? "Add a value for " : "Value of ";
        el.setAttribute("aria-label", prefix + (spec.key || "this property"));
      });
    }
    function drawValue() {
      holder.replaceChildren();
      var editorEl = valueEditor(spec, path, source, eventName);
      if (editorEl) holder.appendChild(editorEl);
    }
    var opSelect = select(FILTER_OPS, spec.operator || "eq", "Comparison for " + (spec.key || "the property"), function (op) {
      operatorChange(spec, op, drawValue);
      changed();
    });
    if (spec.key) rememberType(source, eventName, spec.key);
    drawValue();
    return [field(join(path, "key"), [keyCombo]), field(join(path, "operator"), [opSelect]), holder];
  }

  function filtersEditor(node, path, eventName) {
    var wrap = h("div", { class: "filters-list", "data-path": join(path, "filters") });
    (node.filters || []).forEach(function (filter, index) {
      var fpath = join(join(path, "filters"), index);
      var row = h("div", { class: "filter-row", "data-path": fpath }, [words(index === 0 ? "where" : "and")]
        .concat(propertyEditor(filter, fpath, "event", eventName, "Property of " + (eventName || "the event"), fpath + ":key"))
        .concat([readonly ? null : iconButton("Remove this filter", "×", function () {
          node.filters.splice(index, 1);
          if (!node.filters.length) delete node.filters;
          structural(join(path, "filters") + ":add");
        })]));
      wrap.appendChild(row);
    });
    if (!readonly) {
      wrap.appendChild(h("button", {
        type: "button", class: "btn btn-ghost btn-small add-filter", "data-focus-key": join(path, "filters") + ":add",
        onclick: function () {
          node.filters = node.filters || [];
          node.filters.push({ key: "", operator: "eq", value: "" });
          structural(join(join(path, "filters"), node.filters.length - 1) + ":key");
        }
      }, ["+ where…"]));
    }
    return wrap;
  }

  // --- Durations and windows ------------------------------------------------------------

  function splitDuration(text) {
    var m = /^([1-9][0-9]*)([mhdw])$/.exec(text || "");
    return m ? { n: Number(m[1]), unit: m[2] } : null;
  }

  function durationEditor(get, set, label, path) {
    var parts = splitDuration(get()) || { n: 1, unit: "d" };
    var num = numberInput(parts.n, label + " (number)", function (v) { parts.n = v; set(parts.n + parts.unit); changed(); }, { min: 1 });
    var unit = select(UNITS, parts.unit, label + " (unit)", function (v) { parts.unit = v; set(parts.n + parts.unit); changed(); });
    return field(path, [num, unit]);
  }

  function windowState(w) {
    if (!w || (w.since == null && w.until == null)) return { mode: "any" };
    var s = splitDuration(w.since), u = splitDuration(w.until);
    if (w.until == null && s) return { mode: "last", a: s.n, unit: s.unit };
    if (w.since == null && u) return { mode: "more", a: u.n, unit: u.unit };
    if (s && u && s.unit === u.unit) return { mode: "between", a: s.n, b: u.n, unit: s.unit };
    return { mode: "custom" };
  }

  function windowEditor(node, path) {
    var wpath = join(path, "window");
    var holder = h("span", { class: "bf-window", "data-path": wpath });
    function draw() {
      holder.replaceChildren();
      var st = windowState(node.window);
      holder.appendChild(field(wpath + ":mode", [select(WINDOW_MODES, st.mode, "When", function (m) {
        if (m === "any") delete node.window;
        else if (m === "last") node.window = { since: "30d" };
        else if (m === "between") node.window = { since: "60d", until: "30d" };
        else if (m === "more") node.window = { until: "90d" };
        else node.window = { since: new Date(Date.now() - 30 * 864e5).toISOString().slice(0, 10) };
        changed();
        draw();
        var again = holder.querySelector("select");
        if (again) again.focus();
      })]));
      var unitSelect = function (unit, onPick) { return select(UNITS, unit, "Unit of time", onPick); };
      if (st.mode === "last" || st.mode === "more") {
        var key = st.mode === "last" ? "since" : "until";
        holder.appendChild(field(join(wpath, key), [
          numberInput(st.a, st.mode === "last" ? "How many, in the last" : "How many, more than … ago", function (v) {
            node.window[key] = v + st.unit; st.a = v; changed();
          }, { min: 1 }),
          unitSelect(st.unit, function (u) { st.unit = u; node.window[key] = st.a + u; changed(); }),
          st.mode === "more" ? words("ago") : null
        ]));
      } else if (st.mode === "between") {
        holder.appendChild(field(join(wpath, "since"), [numberInput(st.a, "From, how long ago", function (v) {
          st.a = v; node.window.since = v + st.unit; changed();
        }, { min: 1 })]));
        holder.appendChild(words("and"));
        holder.appendChild(field(join(wpath, "until"), [numberInput(st.b, "To, how long ago", function (v) {
          st.b = v; node.window.until = v + st.unit; changed();
        }, { min: 1 })]));
        holder.appendChild(unitSelect(st.unit, function (u) {
          st.unit = u; node.window.since = st.a + u; node.window.until = st.b + u; changed();
        }));
        holder.appendChild(words("ago"));
      } else if (st.mode === "custom") {
        ["since", "until"].forEach(function (key) {
          var input = h("input", {
            type: "text", class: "bf-date", value: node.window[key] == null ? "" : String(node.window[key]),
            placeholder: key === "since" ? "from 2026-05-01 or 30d" : "until 2026-06-01 or 7d",
            "aria-label": key === "since" ? "From (date or duration ago)" : "Until (date or duration ago)", disabled: readonly
          });
          input.addEventListener("input", function () {
            if (input.value.trim() === "") delete node.window[key]; else node.window[key] = input.value.trim();
            changed();
          });
          holder.appendChild(field(join(wpath, key), [words(key === "since" ? "from" : "until"), input]));
        });
      }
    }
    draw();
    return holder;
  }

  function comparisonEditor(get, set, ops, label, path, suffix) {
    var holder = h("span", { class: "bf-count", "data-path": path });
    function draw() {
      holder.replaceChildren();
      var c = get() || { operator: "gte", value: 1 };
      holder.appendChild(field(join(path, "operator"), [select(ops, c.operator, label, function (op) {
        var cur = get() || { operator: "gte", value: 1 };
        var base = Array.isArray(cur.value) ? cur.value[0] : cur.value;
        set({ operator: op, value: op === "between" ? [base || 0, (base || 0) + 5] : (base === undefined ? 1 : base) });
        changed();
        draw();
        holder.querySelector("select").focus();
      })]));
      if (c.operator === "between") {
        holder.appendChild(field(join(path, "value"), [
          numberInput(c.value[0], label + ": from", function (v) { var cur = get(); cur.value[0] = v; set(cur); changed(); }, { min: 0 }),
          words("and"),
          numberInput(c.value[1], label + ": to", function (v) { var cur = get(); cur.value[1] = v; set(cur); changed(); }, { min: 0 })
        ]));
      } else {
        holder.appendChild(field(join(path, "value"), [numberInput(c.value, label + ": number", function (v) {
          var cur = get() || { operator: "gte", value: 1 };
          set({ operator: cur.operator, value: v });
          changed();
        }, { min: 0 })]));
      }
      if (suffix) holder.appendChild(words(suffix));
    }
    draw();
    return holder;
  }

  // --- Conditions -----------------------------------------------------------------------

  function kindOf(n) {
    switch (n && n.type) {
      case "event": return n.count && n.count.operator === "eq" && n.count.value === 0 ? "did_not" : "did";
      case "aggregate": return "aggregate";
      case "first_performed": return "first";
      case "last_performed": return "last";
      case "regular": return "regular";
      case "sequence": return n.completed === false ? "dropped" : "then";
      case "trait": return "trait";
      case "segment": return "segment";
      default: return "group";
    }
  }

  function firstEvent(n) {
    if (!n) return "";
    if (n.event !== undefined) return n.event;
    if (n.steps && n.steps[0]) return n.steps[0].event || "";
    return "";
  }

  function newCondition(kind, from) {
    var ev = firstEvent(from);
    var filters = from && from.filters ? from.filters : undefined;
    var win = from && from.window ? from.window : undefined;
    var n;
    switch (kind) {
      case "did": n = { type: "event", event: ev }; break;
      case "did_not": n = { type: "event", event: ev, count: { operator: "eq", value: 0 } }; break;
      case "aggregate": n = { type: "aggregate", event: ev, key: "", function: "sum", operator: "gte", value: 100 }; break;
      case "first": n = { type: "first_performed", event: ev }; break;
      case "last": n = { type: "last_performed", event: ev }; break;
      case "regular": n = { type: "regular", event: ev, period: "7d", periods: 4, min_periods: 3 }; break;
      case "then":
      case "dropped":
        n = { type: "sequence", steps: [{ event: ev }, { event: "" }], within: "1d" };
        if (from && from.steps) n.steps = from.steps;
        if (from && from.within) n.within = from.within;
        if (kind === "dropped") n.completed = false;
        break;
      case "trait": n = { type: "trait", key: "", operator: "eq", value: "" }; break;
      default: n = { type: "segment", segment: segments.length ? segments[0].id : null };
    }
    if (filters && kind !== "trait" && kind !== "segment" && kind !== "then" && kind !== "dropped") n.filters = filters;
    if (win && kind !== "trait" && kind !== "segment" && kind !== "regular") n.window = win;
    return n;
  }

  function eventPicker(node, key, path, label, focusKey) {
    return field(join(path, key), [combobox({
      label: label, value: node[key], path: join(path, key), placeholder: "event name", cls: "event-input", focusKey: focusKey,
      extra: [["$any", "$any — any event"]],
      params: function () { return { kind: "events" }; },
      onInput: function (text) { node[key] = text; changed(); },
      onPick: function (text) { node[key] = text; changed(); }
    })], "bf-event");
  }

  function conditionFields(node, path) {
    var kind = kindOf(node);
    var parts = [];
    if (kind === "did" || kind === "did_not" || kind === "first" || kind === "last" || kind === "regular") {
      parts.push(eventPicker(node, "event", path, "Event", path + ":event"));
      if (kind === "did") {
        parts.push(comparisonEditor(function () { return node.count; }, function (c) { node.count = c; }, COUNT_OPS, "How often", join(path, "count"), "times"));
      }
      if (kind === "regular") {
        parts.push(words("in at least"));
        parts.push(field(join(path, "min_periods"), [numberInput(node.min_periods, "In at least how many periods", function (v) { node.min_periods = v; changed(); }, { min: 1 })]));
        parts.push(words("of the last"));
        parts.push(field(join(path, "periods"), [numberInput(node.periods, "Out of how many periods", function (v) { node.periods = v; changed(); }, { min: 1 })]));
        parts.push(field(join(path, "period"), [select([["1d", "days"], ["7d", "weeks"], ["30d", "30-day periods"]], node.period, "Period", function (v) { node.period = v; changed(); })]));
      } else {
        parts.push(windowEditor(node, path));
      }
      return { line: parts, below: [filtersEditor(node, path, node.event)] };
    }
    if (kind === "aggregate") {
      parts.push(field(join(path, "function"), [select(FUNCTIONS, node.function, "Function", function (v) { node.function = v; changed(); })]));
      parts.push(words("of"));
      parts.push(field(join(path, "key"), [combobox({
        label: "Numeric property", value: node.key, path: join(path, "key"), placeholder: "property, e.g. revenue",
        params: function () { return { kind: "keys", source: "event", event: node.event || "" }; },
        onInput: function (t) { node.key = t; changed(); }, onPick: function (t) { node.key = t; changed(); }
      })]));
      parts.push(words("on"));
      parts.push(eventPicker(node, "event", path, "Event", path + ":event"));
      parts.push(words("is"));
      parts.push(comparisonEditor(function () { return { operator: node.operator, value: node.value }; },
        function (c) { node.operator = c.operator; node.value = c.value; }, NUMBER_OPS, "Compared with", path, ""));
      parts.push(windowEditor(node, path));
      return { line: parts, below: [filtersEditor(node, path, node.event)] };
    }
    if (kind === "then" || kind === "dropped") {
      var stepsWrap = h("ol", { class: "steps", "data-path": join(path, "steps") });
      node.steps = node.steps || [];
      node.steps.forEach(function (step, index) {
        var spath = join(join(path, "steps"), index);
        stepsWrap.appendChild(h("li", { class: "step-row", "data-path": spath }, [
          h("div", { class: "step-line" }, [
            words(index === 0 ? "did" : (kind === "dropped" && index === 1 ? "but not then" : "then")),
            eventPicker(step, "event", spath, "Step " + (index + 1) + " event", spath + ":event"),
            !readonly && node.steps.length > 2 ? iconButton("Remove step " + (index + 1), "×", function () {
              node.steps.splice(index, 1); structural(join(path, "steps") + ":add");
            }) : null
          ]),
          filtersEditor(step, spath, step.event)
        ]));
      });
      var tail = [words("within"), durationEditor(function () { return node.within; }, function (v) { node.within = v; }, "Within", join(path, "within")), windowEditor(node, path)];
      var addStep = !readonly && node.steps.length < 5 ? h("button", {
        type: "button", class: "btn btn-ghost btn-small", "data-focus-key": join(path, "steps") + ":add",
        onclick: function () { node.steps.push({ event: "" }); structural(join(join(path, "steps"), node.steps.length - 1) + ":event"); }
      }, ["+ step"]) : null;
      return { line: [], below: [stepsWrap, h("div", { class: "cond-line" }, tail.concat([addStep]))] };
    }
    if (kind === "trait") {
      return { line: propertyEditor(node, path, "trait", "", "Trait", path + ":key"), below: [] };
    }
    // segment
    var options = segments.filter(function (s) { return s.id !== selfId; }).map(function (s) { return [s.id, s.name]; });
    if (!options.length) return { line: [h("span", { class: "muted small", text: "No other segments yet." })], below: [] };
    if (node.segment == null) node.segment = Number(options[0][0]);
    return { line: [field(join(path, "segment"), [select(options, node.segment, "Segment", function (v) { node.segment = Number(v); changed(); })])], below: [] };
  }

  // --- Groups ---------------------------------------------------------------------------

  function isGroup(n) { return n && (n.type === "and" || n.type === "or" || n.type === "not"); }

  // The conditions a group shows, where they live in the document, and how to edit them.
  function groupView(node, path, isVirtual) {
    if (isVirtual) return { mode: "all", items: [node], paths: [path], listPath: path };
    if (node.type === "and" || node.type === "or") {
      var list = node.conditions || [];
      return { mode: node.type === "and" ? "all" : "any", items: list, listPath: join(path, "conditions"),
        paths: list.map(function (_, i) { return join(join(path, "conditions"), i); }) };
    }
    var child = node.condition;
    if (child && child.type === "or") {
      var inner = child.conditions || [];
      var base = join(join(path, "condition"), "conditions");
      return { mode: "none", items: inner, listPath: base, paths: inner.map(function (_, i) { return join(base, i); }) };
    }
    return { mode: "none", items: child ? [child] : [], paths: [join(path, "condition")], listPath: join(path, "condition") };
  }

  // The live array of a group's conditions, reshaping the document only when an edit needs it.
  function editableList(slot, isVirtual) {
    var node = slot.get();
    if (isVirtual) { var wrapped = { type: "and", conditions: [node] }; slot.set(wrapped); return wrapped.conditions; }
    if (node.type === "and" || node.type === "or") { node.conditions = node.conditions || []; return node.conditions; }
    if (!node.condition) { node.condition = { type: "or", conditions: [] }; return node.condition.conditions; }
    if (node.condition.type !== "or") node.condition = { type: "or", conditions: [node.condition] };
    node.condition.conditions = node.condition.conditions || [];
    return node.condition.conditions;
  }

  function setMode(slot, isVirtual, newMode) {
    var list = editableList(slot, isVirtual).slice();
    var node = slot.get();
    Object.keys(node).forEach(function (k) { delete node[k]; });
    if (newMode === "none") { node.type = "not"; node.condition = { type: "or", conditions: list }; }
    else { node.type = newMode === "all" ? "and" : "or"; node.conditions = list; }
  }

  var JOINERS = { all: "and", any: "or", none: "nor" };

  // ``outer`` is where a nested group sits in its parent ({slot, isVirtual, index}), for "move out".
  function renderGroup(slot, path, depth, isVirtual, parentTools, outer) {
    var node = slot.get();
    var view = groupView(node, path, isVirtual);
    var headId = nextId("gh");
    var box = h("div", { class: "bgroup depth-" + Math.min(depth, 4), role: "group", "aria-labelledby": headId, "data-path": isVirtual ? "(virtual)" : path });
    var modeSelect = select([["all", "all of"], ["any", "any of"], ["none", "none of"]], view.mode, depth === 0 ? "People who match" : "This group matches", function (m) {
      setMode(slot, isVirtual, m);
      structural((isVirtual ? "" : path) + ":mode");
    }, { "data-focus-key": (isVirtual ? "" : path) + ":mode" });
    var head = h("div", { class: "bgroup-head" }, [
      h("span", { id: headId, class: "bgroup-title" }, [depth === 0 ? "People who match " : "Match ", modeSelect, " these conditions"]),
      parentTools ? h("span", { class: "row-tools" }, parentTools) : null
    ]);
    box.appendChild(head);
    box.appendChild(h("div", { class: "slot-errors", "data-path": view.listPath }));
    if (view.listPath !== join(path, "conditions")) box.appendChild(h("div", { class: "slot-errors", "data-path": join(path, "conditions") }));
    var ol = h("ol", { class: "bconds" });
    view.items.forEach(function (child, index) {
      var childPath = view.paths[index];
      // A stable slot that does not reshape the document just to read it.
      var readSlot = {
        get: function () { return view.items[index]; },
        set: function (v) {
          if (isVirtual) { doc = v; return; }
          var arr = editableList(slot, false);
          arr[index] = v;
        }
      };
      var moveTools = readonly ? [] : [
        iconButton("Move up", "↑", function () { move(slot, isVirtual, index, -1, childPath); }, { disabled: index === 0, "data-focus-key": childPath + ":up" }),
        iconButton("Move down", "↓", function () { move(slot, isVirtual, index, 1, childPath); }, { disabled: index === view.items.length - 1, "data-focus-key": childPath + ":down" })
      ];
      if (!readonly && index > 0 && isGroup(view.items[index - 1])) {
        moveTools.push(iconButton("Move into the group above", "↱", function () { intoGroupAbove(slot, isVirtual, index, view.paths[index - 1]); }));
      }
      if (!readonly && outer) {
        moveTools.push(iconButton("Move out of this group", "↰", function () { outOfGroup(slot, index, outer); }));
      }
      var li = h("li", { class: "bcond-item" }, [index > 0 ? h("span", { class: "joiner", text: JOINERS[view.mode] }) : (view.mode === "none" ? h("span", { class: "joiner", text: "neither" }) : null)]);
      if (isGroup(child)) {
        var tools = moveTools.concat(readonly ? [] : [
          h("button", { type: "button", class: "btn btn-ghost btn-small", onclick: function () { ungroup(slot, isVirtual, index, view.listPath); } }, ["Ungroup"]),
          iconButton("Remove this group", "×", function () { removeAt(slot, isVirtual, index, path); })
        ]);
        li.appendChild(renderGroup(readSlot, childPath, depth + 1, false, tools, { slot: slot, isVirtual: isVirtual, index: index, listPath: view.listPath }));
      } else {
        li.appendChild(renderCondition(readSlot, childPath, moveTools.concat(readonly ? [] : [
          h("button", { type: "button", class: "btn btn-ghost btn-small", title: "Put this condition in a group of its own", "aria-label": "Group this condition", onclick: function () { wrapAt(slot, isVirtual, index, path); } }, ["Group"]),
          iconButton("Remove this condition", "×", function () { removeAt(slot, isVirtual, index, path); }, { "data-focus-key": childPath + ":remove" })
        ])));
      }
      ol.appendChild(li);
    });
    box.appendChild(ol);
    if (!view.items.length) {
      box.appendChild(h("p", { class: "bgroup-empty muted", text: depth === 0 ? "No conditions yet. Add one to see who matches." : "This group is empty: add a condition or remove it." }));
    }
    if (!readonly) {
      var addPath = isVirtual ? "" : path;
      box.appendChild(h("div", { class: "bgroup-add" }, [
        h("button", { type: "button", class: "btn btn-small", "data-focus-key": addPath + ":add", onclick: function () {
          var list = editableList(slot, isVirtual);
          list.push(newCondition("did"));
          var base = isVirtual ? "conditions" : groupView(slot.get(), path, false).listPath;
          structural(join(base, list.length - 1) + ":kind");
        } }, ["+ Condition"]),
        depth < 7 ? h("button", { type: "button", class: "btn btn-ghost btn-small", onclick: function () {
          var list = editableList(slot, isVirtual);
          list.push({ type: "or", conditions: [newCondition("did")] });
          var base = isVirtual ? "conditions" : groupView(slot.get(), path, false).listPath;
          structural(join(base, list.length - 1) + ":mode");
        } }, ["+ Group"]) : null
      ]));
    }
    return box;
  }

  function renderCondition(slot, path, tools) {
    var node = slot.get();
    var kind = kindOf(node);
    var row = h("div", { class: "bcond", "data-path": path });
    var kindSelect = select(KINDS, kind, "Condition", function (k) {
      slot.set(newCondition(k, slot.get()));
      structural(path + ":kind");
    }, { "data-focus-key": path + ":kind", class: "kind-select" });
    var fields = conditionFields(node, path);
    var body = h("div", { class: "bcond-body" }, [h("div", { class: "cond-line" }, [field(join(path, "type"), [kindSelect])].concat(fields.line))]);
    fields.below.forEach(function (el) { body.appendChild(el); });
    row.appendChild(body);
    if (tools.length) row.appendChild(h("span", { class: "row-tools" }, tools));
    return row;
  }

  function move(slot, isVirtual, index, delta, childPath) {
    var list = editableList(slot, isVirtual);
    var target = index + delta;
    if (target < 0 || target >= list.length) return;
    var item = list.splice(index, 1)[0];
    list.splice(target, 0, item);
    var newPath = childPath.replace(/\[(\d+)\]$/, "[" + target + "]");
    structural(newPath + (delta < 0 ? ":up" : ":down"));
  }

  function removeAt(slot, isVirtual, index, path) {
    if (isVirtual) { doc = { type: "and", conditions: [] }; structural(":add"); return; }
    editableList(slot, false).splice(index, 1);
    structural(path + ":add");
  }

  function wrapAt(slot, isVirtual, index, path) {
    var list = editableList(slot, isVirtual);
    list[index] = { type: "or", conditions: [list[index]] };
    var base = groupView(slot.get(), isVirtual ? "" : path, false).listPath;
    structural(join(base, index) + ":mode");
  }

  function focusKeyOf(item, path) { return path + (isGroup(item) ? ":mode" : ":kind"); }

  function intoGroupAbove(slot, isVirtual, index, abovePath) {
    var list = editableList(slot, isVirtual);
    var item = list.splice(index, 1)[0];
    var above = { get: function () { return list[index - 1]; }, set: function (v) { list[index - 1] = v; } };
    var inner = editableList(above, false);
    inner.push(item);
    structural(focusKeyOf(item, join(groupView(list[index - 1], abovePath, false).listPath, inner.length - 1)));
  }

  // The condition goes right after its group in the parent; a group left empty goes too.
  function outOfGroup(slot, index, outer) {
    var list = editableList(slot, false);
    var item = list.splice(index, 1)[0];
    var outerList = editableList(outer.slot, outer.isVirtual);
    var at = list.length ? outer.index + 1 : outer.index;
    outerList.splice(at, list.length ? 0 : 1, item);
    var listPath = outer.isVirtual ? "conditions" : outer.listPath;
    structural(focusKeyOf(item, join(listPath, at)));
  }

  function ungroup(slot, isVirtual, index, listPath) {
    var list = editableList(slot, isVirtual);
    var inner = groupView(list[index], "", false).items;
    list.splice.apply(list, [index, 1].concat(inner));
    structural(inner.length ? focusKeyOf(inner[0], join(listPath, index)) : join(listPath.replace(/\.conditions$/, ""), "") + ":add");
  }

  // --- State changes --------------------------------------------------------------------

  function touch(path) { if (path) { touched[path] = true; placeErrors(lastErrors); } }

  function rootSlot() { return { get: function () { return doc; }, set: function (v) { doc = v; } }; }

  function render() {
    var scrollY = window.scrollY;
    editor.replaceChildren(isGroup(doc) ? renderGroup(rootSlot(), "", 0, false, null) : renderGroup(rootSlot(), "", 0, true, null));
    if (pendingFocus) {
      var target = editor.querySelector('[data-focus-key="' + cssEscape(pendingFocus) + '"]');
      if (target && !target.disabled) target.focus();
      else { var first = editor.querySelector("select, input, button:not([disabled])"); if (first && pendingFocus) first.focus(); }
      pendingFocus = null;
    }
    window.scrollTo(0, scrollY);
    placeErrors(lastErrors);
  }

  function cssEscape(text) { return window.CSS && CSS.escape ? CSS.escape(text) : text.replace(/["\\]/g, "\\$&"); }

  function structural(focusKey) {
    pendingFocus = focusKey;
    render();
    changed();
  }

  var previewTimer = null;
  function changed() {
    if (hidden) hidden.value = JSON.stringify(doc);
    if (mode === "json" && jsonArea && document.activeElement !== jsonArea) jsonArea.value = JSON.stringify(doc, null, 2);
    clearTimeout(previewTimer);
    previewTimer = setTimeout(preview, 350);
    setStatus("Updating…");
  }

  // --- Live preview ---------------------------------------------------------------------

  var countEl = document.getElementById("preview-count");
  var countLabel = document.getElementById("preview-label");
  var sampleEl = document.getElementById("preview-sample");
  var statusEl = document.getElementById("preview-status");
  var sentenceEl = document.getElementById("builder-sentence");
  var requestSeq = 0;

  function setStatus(text) { if (statusEl) statusEl.textContent = text; }

  function preview() {
    if (!previewUrl || readonly) return;
    var mine = ++requestSeq;
    root.classList.add("is-loading");
    fetch(previewUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ definition: doc, segment: selfId })
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    }).then(function (res) {
      if (mine !== requestSeq) return;
      root.classList.remove("is-loading");
      showPreview(res.data);
    }).catch(function () {
      if (mine !== requestSeq) return;
      root.classList.remove("is-loading");
      setStatus("Could not reach the server; the size will update when it answers again.");
    });
  }

  function showPreview(data) {
    if (data.code === "timeout") {
      root.setAttribute("data-state", "slow");
      if (countEl) countEl.textContent = "—";
      if (countLabel) countLabel.textContent = data.detail;
      setStatus("Too large to count while editing; saving counts it in the background.");
      return;
    }
    lastErrors = data.errors || [];
    placeErrors(lastErrors);
    if (data.sentence && sentenceEl) {
      sentenceEl.replaceChildren();
      data.sentence.forEach(function (part) {
        sentenceEl.appendChild(part.kind ? h("span", { class: "s-" + part.kind, text: part.text }) : document.createTextNode(part.text));
      });
    }
    if (lastErrors.length) {
      root.setAttribute("data-state", "invalid");
      var empty = isGroup(doc) && doc.type !== "not" && (!doc.conditions || !doc.conditions.length);
      if (countEl) countEl.textContent = "—";
      if (countLabel) countLabel.textContent = empty ? "Add a condition to see who matches" : "Fix the highlighted fields to see who matches";
      if (sentenceEl && !data.sentence) sentenceEl.textContent = empty ? "People who … (add a condition)" : "The definition is not complete yet.";
      if (sampleEl) sampleEl.replaceChildren();
      setStatus(lastErrors.length + (lastErrors.length === 1 ? " field to fix" : " fields to fix"));
      return;
    }
    root.setAttribute("data-state", "valid");
    if (countEl) { countEl.textContent = Number(data.count).toLocaleString("en-US"); countEl.setAttribute("data-count", data.count); }
    if (countLabel) countLabel.textContent = data.count === 1 ? "person matches now" : "people match now";
    if (sampleEl) {
      sampleEl.replaceChildren();
      (data.sample || []).forEach(function (person) {
        sampleEl.appendChild(h("li", null, [
          h("a", { href: person.url, class: "person-link", text: person.label }),
          person.detail ? h("span", { class: "cell-sub", text: person.detail }) : null
        ]));
      });
    }
    setStatus("Up to date");
  }

  function visible(path) {
    if (showAllErrors) return true;
    var p = path;
    while (p) {
      if (touched[p]) return true;
      var cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      if (cut <= 0) break;
      p = p.slice(0, cut);
    }
    return false;
  }

  function placeErrors(errors) {
    Array.prototype.forEach.call(root.querySelectorAll(".builder-error"), function (el) { el.remove(); });
    Array.prototype.forEach.call(root.querySelectorAll("[aria-invalid]"), function (el) {
      el.removeAttribute("aria-invalid");
      el.removeAttribute("aria-describedby");
    });
    Array.prototype.forEach.call(root.querySelectorAll(".bf.has-error, .bcond.has-error"), function (el) { el.classList.remove("has-error"); });
    var summary = document.getElementById("builder-error-summary");
    var shown = 0;
    errors.forEach(function (error) {
      if (!visible(error.path)) return;
      var target = findTarget(error.path);
      shown += 1;
      var id = nextId("err");
      var p = h("p", { class: "field-error builder-error", id: id, role: "alert", "data-error-path": error.path, text: error.message });
      if (!target) { if (summary) summary.appendChild(p); return; }
      target.classList.add("has-error");
      if (target.classList.contains("slot-errors")) target.appendChild(p);
      else target.insertAdjacentElement("afterend", p);
      var control = target.querySelector("input, select, textarea");
      if (control) { control.setAttribute("aria-invalid", "true"); control.setAttribute("aria-describedby", id); }
    });
    return shown;
  }

  function findTarget(path) {
    var p = path;
    while (true) {
      var el = editor.querySelector('[data-path="' + cssEscape(p) + '"]');
      if (el) return el;
      if (!p) return null;
      var cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      if (cut < 0) {
        p = "";
        var top = editor.querySelector('.slot-errors[data-path="conditions"], .slot-errors[data-path=""]');
        if (top) return top;
        return null;
      }
      p = p.slice(0, cut);
    }
  }

  // --- JSON view ------------------------------------------------------------------------

  var tabs = root.querySelectorAll("[data-builder-tab]");
  function setViewMode(newMode) {
    if (newMode === mode) return true;
    if (newMode === "visual") {
      var parsed;
      try { parsed = JSON.parse(jsonArea.value); } catch (e) {
        jsonError.textContent = "This is not valid JSON: " + e.message;
        jsonError.hidden = false;
        jsonArea.setAttribute("aria-invalid", "true");
        jsonArea.focus();
        return false;
      }
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
        jsonError.textContent = "The definition must be one JSON object with a \"type\".";
        jsonError.hidden = false;
        jsonArea.focus();
        return false;
      }
      jsonError.hidden = true;
      jsonArea.removeAttribute("aria-invalid");
      doc = parsed;
      mode = "visual";
      render();
      changed();
    } else {
      jsonArea.value = JSON.stringify(doc, null, 2);
      mode = "json";
    }
    visualPane.hidden = mode !== "visual";
    jsonPane.hidden = mode !== "json";
    Array.prototype.forEach.call(tabs, function (tab) {
      var on = tab.getAttribute("data-builder-tab") === mode;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
    });
    return true;
  }
  Array.prototype.forEach.call(tabs, function (tab) {
    tab.addEventListener("click", function () { setViewMode(tab.getAttribute("data-builder-tab")); });
    tab.addEventListener("keydown", function (event) {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      event.preventDefault();
      var other = tab.getAttribute("data-builder-tab") === "visual" ? "json" : "visual";
      if (setViewMode(other)) root.querySelector('[data-builder-tab="' + other + '"]').focus();
    });
  });
  if (jsonArea) {
    jsonArea.addEventListener("input", function () {
      try {
        var parsed = JSON.parse(jsonArea.value);
        jsonError.hidden = true;
        jsonArea.removeAttribute("aria-invalid");
        if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) { doc = parsed; changed(); }
      } catch (e) {
        jsonError.textContent = "Not valid JSON yet: " + e.message;
        jsonError.hidden = false;
      }
    });
  }

  // Saving: errors from here on are shown wherever they are, even on fields not visited yet.
  var form = root.closest("form");
  if (form) {
    form.addEventListener("submit", function (event) {
      if (mode === "json" && !setViewMode("visual")) { event.preventDefault(); return; }
      if (hidden) hidden.value = JSON.stringify(doc);
      showAllErrors = true;
    });
  }

  render();
  if (hidden) hidden.value = JSON.stringify(doc);
  if (serverErrors.length) placeErrors(serverErrors);
  preview();
})();
