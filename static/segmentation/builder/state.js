// The builder's state: the page's elements and data, and the document being edited.
// The document itself is the state: every control reads and writes the JSON object in place, so
// the JSON view and the visual editor always show the same document. ``state`` holds what changes;
// ``hooks`` are set by builder.js, so that editing code can re-render without importing the renderer.

export const root = document.querySelector("[data-builder]");

export function readJson(id, fallback) {
  var el = document.getElementById(id);
  if (!el) return fallback;
  try { return JSON.parse(el.textContent); } catch (e) { return fallback; }
}

function attribute(name) { return root ? root.getAttribute(name) : null; }

export const readonly = !!root && root.hasAttribute("data-readonly");
export const catalogueUrl = attribute("data-catalogue-url");
export const previewUrl = attribute("data-preview-url");
export const selfId = attribute("data-segment-id") ? Number(attribute("data-segment-id")) : null;
export const segments = readJson("builder-segments", []);
export const serverErrors = readJson("builder-errors", []);
export const hidden = document.getElementById("id_definition");
export const editor = document.getElementById("builder-editor");
export const jsonArea = document.getElementById("builder-json-text");
export const jsonPane = document.getElementById("builder-json");
export const visualPane = document.getElementById("builder-visual");
export const jsonError = document.getElementById("builder-json-error");
export const csrf = (function () {
  try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
})();

export const state = {
  doc: readJson("builder-definition", null) || { type: "and", conditions: [] },
  showAllErrors: serverErrors.length > 0,
  touched: {},
  lastErrors: serverErrors,
  lastWarnings: [],
  uid: 0,
  pendingFocus: null,
  mode: "visual"
};

export const hooks = { render: function () {}, preview: function () {}, placeErrors: function () {} };

var statusEl = document.getElementById("preview-status");
export function setStatus(text) { if (statusEl) statusEl.textContent = text; }

// --- State changes --------------------------------------------------------------------

export function touch(path) { if (path) { state.touched[path] = true; hooks.placeErrors(state.lastErrors); } }

export function rootSlot() { return { get: function () { return state.doc; }, set: function (v) { state.doc = v; } }; }

export function structural(focusKey) {
  state.pendingFocus = focusKey;
  hooks.render();
  changed();
}

var previewTimer = null;
export function changed() {
  if (hidden) hidden.value = JSON.stringify(state.doc);
  if (state.mode === "json" && jsonArea && document.activeElement !== jsonArea) jsonArea.value = JSON.stringify(state.doc, null, 2);
  clearTimeout(previewTimer);
  previewTimer = setTimeout(hooks.preview, 350);
  setStatus("Updating…");
}
