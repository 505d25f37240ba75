// DOM helpers: elements built with textContent only (data from the workspace is never HTML).

import { readonly, state } from "./state.js";

// --- DOM helpers ----------------------------------------------------------------------

export function h(tag, attrs, children) {
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

export function nextId(prefix) { state.uid += 1; return prefix + "-" + state.uid; }

export function join(path, part) {
  if (typeof part === "number") return path + "[" + part + "]";
  return path ? path + "." + part : part;
}

export function select(options, value, label, onChange, extra) {
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

export function numberInput(value, label, onInput, extra) {
  var el = h("input", Object.assign({
    type: "number", inputmode: "numeric", class: "bf-num", value: value === undefined ? "" : value,
    "aria-label": label, disabled: readonly
  }, extra || {}));
  el.addEventListener("input", function () { onInput(el.value === "" ? null : Number(el.value)); });
  return el;
}

export function field(path, children, cls) {
  return h("span", { class: "bf" + (cls ? " " + cls : ""), "data-path": path }, children);
}

export function words(text) { return h("span", { class: "bw", text: text }); }

export function iconButton(label, symbol, onClick, extra) {
  return h("button", Object.assign({
    type: "button", class: "btn btn-ghost btn-small bt-icon", "aria-label": label, title: label, onclick: onClick
  }, extra || {}), [h("span", { "aria-hidden": "true", text: symbol })]);
}


export function cssEscape(text) { return window.CSS && CSS.escape ? CSS.escape(text) : text.replace(/["\\]/g, "\\$&"); }
