// The segment builder: edits the definition document (segment-definition.md) visually.
// No build step, no framework: ES modules served as they are (builder/*.js), loaded with
// <script type="module">. Data from the workspace (event names, keys, values, people) is only
// ever set with textContent.
//
//   builder/state.js       the page's elements and data, the document, state changes
//   builder/vocabulary.js  kinds of condition, operators, units
//   builder/dom.js         element helpers
//   builder/combobox.js    the catalogue's suggestions
//   builder/values.js      property conditions (event filters, traits)
//   builder/time.js        durations, windows, comparisons
//   builder/conditions.js  one condition's fields
//   builder/groups.js      groups of conditions and the render of the document
//   builder/errors.js      validation errors next to their fields
//   builder/preview.js     the live preview (count, sample, sentence) from the server
//   builder/json_view.js   the JSON view

import { placeErrors } from "./builder/errors.js";
import { render } from "./builder/groups.js";
import { jsonViewStart, setViewMode } from "./builder/json_view.js";
import { preview } from "./builder/preview.js";
import { hidden, hooks, root, serverErrors, state } from "./builder/state.js";

function start() {
  hooks.render = render;
  hooks.preview = preview;
  hooks.placeErrors = placeErrors;
  jsonViewStart();

  // Saving: errors from here on are shown wherever they are, even on fields not visited yet.
  var form = root.closest("form");
  if (form) {
    form.addEventListener("submit", function (event) {
      if (state.mode === "json" && !setViewMode("visual")) { event.preventDefault(); return; }
      if (hidden) hidden.value = JSON.stringify(state.doc);
      state.showAllErrors = true;
    });
  }

  render();
  if (hidden) hidden.value = JSON.stringify(state.doc);
  if (serverErrors.length) placeErrors(serverErrors);
  preview();
}

if (root) start();
