// The server's validation errors, placed next to the fields they name once the field was visited.

import { cssEscape, h, nextId } from "./dom.js";
import { editor, root, state } from "./state.js";

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
