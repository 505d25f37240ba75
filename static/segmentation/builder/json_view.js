// The JSON view of the document, and switching between it and the visual editor.

import { render } from "./groups.js";
import { changed, jsonArea, jsonError, jsonPane, root, state, visualPane } from "./state.js";

// --- JSON view ------------------------------------------------------------------------

function tabs() { return root.querySelectorAll("[data-builder-tab]"); }

export function setViewMode(newMode) {
  if (newMode === state.mode) return true;
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
    state.doc = parsed;
    state.mode = "visual";
    render();
    changed();
  } else {
    jsonArea.value = JSON.stringify(state.doc, null, 2);
    state.mode = "json";
  }
  visualPane.hidden = state.mode !== "visual";
  jsonPane.hidden = state.mode !== "json";
  Array.prototype.forEach.call(tabs(), function (tab) {
    var on = tab.getAttribute("data-builder-tab") === state.mode;
    tab.setAttribute("aria-selected", on ? "true" : "false");
    tab.tabIndex = on ? 0 : -1;
  });
  return true;
}
// The tabs switch views; typing in the JSON view edits the document as soon as it parses.
export function jsonViewStart() {
  Array.prototype.forEach.call(tabs(), function (tab) {
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
        if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) { state.doc = parsed; changed(); }
      } catch (e) {
        jsonError.textContent = "Not valid JSON yet: " + e.message;
        jsonError.hidden = false;
      }
    });
  }
}
