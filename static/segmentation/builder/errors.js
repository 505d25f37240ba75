// The server's validation errors, placed next to the fields they name once the field was visited;
// and its hints (names never seen in the workspace), next to their fields while not being typed in.

import { cssEscape, h, nextId } from "./dom.js";
import { editor, root, state, structural } from "./state.js";

// --- Errors ---------------------------------------------------------------------------

export function visible(path) {
  if (state.showAllErrors) return true;
  var p = path;
  while (p) {
    if (state.touched[p]) return true;
    var cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    if (cut <= 0) break;
    p = p.slice(0, cut);
  }
  return false;
}

export function placeErrors(errors) {
  Array.prototype.forEach.call(root.querySelectorAll(".builder-error, .builder-warning"), function (el) { el.remove(); });
  Array.prototype.forEach.call(root.querySelectorAll("[aria-invalid], [data-warned]"), function (el) {
    el.removeAttribute("aria-invalid");
    el.removeAttribute("data-warned");
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
  placeWarnings(state.lastWarnings || []);
  return shown;
}

// A hint sits after its field, with a button taking the suggestion; never while the user is typing
// in that field (a half-typed name is not a typo yet), never where an error already is.
function placeWarnings(warnings) {
  warnings.forEach(function (warning) {
    var target = editor.querySelector('[data-path="' + cssEscape(warning.path) + '"]');
    if (!target || target.classList.contains("has-error") || target.contains(document.activeElement)) return;
    var id = nextId("warn");
    var take = warning.suggestion ? h("button", {
      type: "button", class: "btn btn-ghost btn-small",
      onclick: function () {
        if (setAt(state.doc, warning.path, warning.suggestion)) structural(warning.path.replace(/\.(\w+)$/, ":$1"));
      }
    }, ["Use " + warning.suggestion]) : null;
    var note = h("p", { class: "builder-warning", id: id, "data-warning-path": warning.path }, [
      h("span", { text: warning.message }), take
    ]);
    target.insertAdjacentElement("afterend", note);
    var control = target.querySelector("input");
    if (control && !control.hasAttribute("aria-describedby")) { control.setAttribute("aria-describedby", id); control.setAttribute("data-warned", ""); }
  });
}

// Set the value at a path of the document ("conditions[0].filters[1].key"); false when the path no
// longer leads anywhere (the document changed since the hint came).
export function setAt(doc, path, value) {
  var parts = [];
  path.replace(/([^.[\]]+)|\[(\d+)\]/g, function (_, name, index) { parts.push(index !== undefined ? Number(index) : name); return ""; });
  var node = doc;
  for (var i = 0; i < parts.length - 1; i++) {
    if (node === null || typeof node !== "object") return false;
    node = node[parts[i]];
  }
  if (node === null || typeof node !== "object" || !parts.length) return false;
  node[parts[parts.length - 1]] = value;
  return true;
}

export function findTarget(path) {
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
