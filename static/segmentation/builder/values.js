// Property conditions: key, operator and value editors, for event filters and traits.

import { combobox, suggestions } from "./combobox.js";
import { field, h, iconButton, join, numberInput, select, words } from "./dom.js";
import { changed, readonly, structural, touch } from "./state.js";
import { FILTER_OPS, NUMERIC_FILTER_OPS } from "./vocabulary.js";

// --- Values ---------------------------------------------------------------------------

// Text typed into a value field becomes a number when it reads as one and the key holds numbers
// (or the operator compares numbers), a boolean for true/false on boolean keys, else a string.
const keyTypes = {};
export function coerce(text, keyType, numeric) {
  var trimmed = String(text).trim();
  var isNumber = trimmed !== "" && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(trimmed);
  if (isNumber && (numeric || keyType === "number")) return Number(trimmed);
  if (keyType === "boolean" && (trimmed === "true" || trimmed === "false")) return trimmed === "true";
  return text;
}

export function keyTypeFor(source, eventName, key) { return keyTypes[source + "\u0000" + (eventName || "") + "\u0000" + key] || ""; }
export function rememberType(source, eventName, key) {
  suggestions({ kind: "keys", source: source, event: eventName || "", q: key }, function (results) {
    results.forEach(function (r) {
      if (r.type) keyTypes[source + "\u0000" + (eventName || "") + "\u0000" + r.value] = r.type;
    });
  });
}

export function chips(filter, path, source, eventName) {
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

export function valueEditor(filter, path, source, eventName) {
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

export function operatorChange(filter, op, rerender) {
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
export function propertyEditor(spec, path, source, eventName, label, focusKey) {
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

export function filtersEditor(node, path, eventName) {
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
