// Durations, time windows and comparisons.

import { field, h, join, numberInput, select, words } from "./dom.js";
import { changed, readonly } from "./state.js";
import { UNITS, WINDOW_MODES } from "./vocabulary.js";

// --- Durations and windows ------------------------------------------------------------

export function splitDuration(text) {
  var m = /^([1-9][0-9]*)([mhdw])$/.exec(text || "");
  return m ? { n: Number(m[1]), unit: m[2] } : null;
}

export function durationEditor(get, set, label, path) {
  var parts = splitDuration(get()) || { n: 1, unit: "d" };
  var num = numberInput(parts.n, label + " (number)", function (v) { parts.n = v; set(parts.n + parts.unit); changed(); }, { min: 1 });
  var unit = select(UNITS, parts.unit, label + " (unit)", function (v) { parts.unit = v; set(parts.n + parts.unit); changed(); });
  return field(path, [num, unit]);
}

export function windowState(w) {
  if (!w || (w.since == null && w.until == null)) return { mode: "any" };
  var s = splitDuration(w.since), u = splitDuration(w.until);
  if (w.until == null && s) return { mode: "last", a: s.n, unit: s.unit };
  if (w.since == null && u) return { mode: "more", a: u.n, unit: u.unit };
  if (s && u && s.unit === u.unit) return { mode: "between", a: s.n, b: u.n, unit: s.unit };
  return { mode: "custom" };
}

export function windowEditor(node, path) {
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

export function comparisonEditor(get, set, ops, label, path, suffix) {
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
