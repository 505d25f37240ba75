// The catalogue's suggestions in an ARIA combobox: event names, property keys and values.

import { h, nextId } from "./dom.js";
import { catalogueUrl, readonly, touch } from "./state.js";

// --- Autocomplete (ARIA combobox with a list popup) -----------------------------------

const cache = {};
export function suggestions(params, done) {
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
export function combobox(opts) {
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
      .concat(results.map(function (r) { return { value: r.value, count: r.count, type: r.type, numeric: r.numeric }; }));
    all.forEach(function (entry) {
      // The "total of a property" picker lists numeric keys first and says which others are not.
      var dim = opts.markNonNumeric && entry.numeric === false;
      var li = h("li", { role: "option", id: nextId("opt"), "aria-selected": "false", class: "combo-option" + (dim ? " is-dim" : "") }, [
        h("span", { class: "combo-value", text: entry.label || entry.value }),
        dim ? h("span", { class: "combo-note", text: "not numeric in the data" }) : null,
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
