// The live preview: the definition posted to the server, its count, sample and sentence shown.

import { h } from "./dom.js";
import { placeErrors } from "./errors.js";
import { isGroup } from "./groups.js";
import { csrf, previewUrl, readonly, root, selfId, setStatus, state } from "./state.js";

// --- Live preview ---------------------------------------------------------------------

const countEl = document.getElementById("preview-count");
const countLabel = document.getElementById("preview-label");
const sampleEl = document.getElementById("preview-sample");
const sentenceEl = document.getElementById("builder-sentence");
let requestSeq = 0;

// An empty top group: nothing to count yet. Until Save was pressed, the builder says so itself
// rather than asking the server to refuse the document (a 400 the user caused by opening the page).
export function isEmpty(doc) {
  if (!isGroup(doc)) return false;
  return doc.type === "not" ? !doc.condition : !doc.conditions || !doc.conditions.length;
}

function showEmpty() {
  requestSeq += 1;  // an answer still on its way is about a document that is gone
  root.classList.remove("is-loading");
  root.setAttribute("data-state", "empty");
  state.lastErrors = [];
  state.lastWarnings = [];
  placeErrors(state.lastErrors);
  if (countEl) { countEl.textContent = "—"; countEl.removeAttribute("data-count"); }
  if (countLabel) countLabel.textContent = "Add a condition to see who matches";
  if (sentenceEl) sentenceEl.textContent = "People who … (add a condition)";
  if (sampleEl) sampleEl.replaceChildren();
  setStatus("");
}

export function preview() {
  if (!previewUrl || readonly) return;
  if (isEmpty(state.doc) && !state.showAllErrors) { showEmpty(); return; }
  var mine = ++requestSeq;
  root.classList.add("is-loading");
  fetch(previewUrl, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
    body: JSON.stringify({ definition: state.doc, segment: selfId })
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

export function showPreview(data) {
  if (data.code === "timeout") {
    root.setAttribute("data-state", "slow");
    if (countEl) countEl.textContent = "—";
    if (countLabel) countLabel.textContent = data.detail;
    setStatus("Too large to count while editing; saving counts it in the background.");
    state.lastWarnings = data.warnings || [];
    placeErrors(state.lastErrors);
    return;
  }
  state.lastErrors = data.errors || [];
  state.lastWarnings = data.warnings || [];
  var shown = placeErrors(state.lastErrors);
  if (data.sentence && sentenceEl) {
    sentenceEl.replaceChildren();
    data.sentence.forEach(function (part) {
      sentenceEl.appendChild(part.kind ? h("span", { class: "s-" + part.kind, text: part.text }) : document.createTextNode(part.text));
    });
  }
  if (state.lastErrors.length) {
    root.setAttribute("data-state", "invalid");
    var empty = isGroup(state.doc) && state.doc.type !== "not" && (!state.doc.conditions || !state.doc.conditions.length);
    if (countEl) countEl.textContent = "—";
    if (countLabel) {
      countLabel.textContent = empty ? "Add a condition to see who matches"
        : shown ? "Fix the highlighted fields to see who matches" : "Complete the conditions to see who matches";
    }
    if (sentenceEl && !data.sentence) sentenceEl.textContent = empty ? "People who … (add a condition)" : "The definition is not complete yet.";
    if (sampleEl) sampleEl.replaceChildren();
    // Only what the user can see counts: fields not visited yet (and Save not pressed) are not "to fix".
    setStatus(shown ? shown + (shown === 1 ? " field to fix" : " fields to fix") : "");
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
