// One condition: its kind and the fields of that kind.

import { combobox } from "./combobox.js";
import { field, h, iconButton, join, numberInput, select, words } from "./dom.js";
import { changed, readonly, segments, selfId, structural } from "./state.js";
import { comparisonEditor, durationEditor, windowEditor } from "./time.js";
import { filtersEditor, propertyEditor } from "./values.js";
import { COUNT_OPS, FUNCTIONS, NUMBER_OPS } from "./vocabulary.js";

// --- Conditions -----------------------------------------------------------------------

export function kindOf(n) {
  switch (n && n.type) {
    case "event": return n.count && n.count.operator === "eq" && n.count.value === 0 ? "did_not" : "did";
    case "aggregate": return "aggregate";
    case "first_performed": return "first";
    case "last_performed": return "last";
    case "regular": return "regular";
    case "sequence": return n.completed === false ? "dropped" : "then";
    case "trait": return "trait";
    case "segment": return "segment";
    case "not": return isNegatedSegment(n) ? "not_segment" : "group";
    default: return "group";
  }
}

// "is not in segment": the contract has no negated segment node, so it is a ``not`` around one
// segment condition, read back as this kind (not as a "none of" group).
export function isNegatedSegment(n) {
  return !!n && n.type === "not" && !!n.condition && n.condition.type === "segment";
}

function segmentOf(n) {
  if (n && n.type === "segment") return n.segment;
  if (isNegatedSegment(n)) return n.condition.segment;
  var others = segments.filter(function (s) { return s.id !== selfId; });
  return others.length ? others[0].id : null;
}

export function firstEvent(n) {
  if (!n) return "";
  if (n.event !== undefined) return n.event;
  if (n.steps && n.steps[0]) return n.steps[0].event || "";
  return "";
}

export function newCondition(kind, from) {
  var ev = firstEvent(from);
  var filters = from && from.filters ? from.filters : undefined;
  var win = from && from.window ? from.window : undefined;
  var n;
  switch (kind) {
    case "did": n = { type: "event", event: ev }; break;
    case "did_not": n = { type: "event", event: ev, count: { operator: "eq", value: 0 } }; break;
    case "aggregate": n = { type: "aggregate", event: ev, key: "", function: "sum", operator: "gte", value: 100 }; break;
    case "first": n = { type: "first_performed", event: ev }; break;
    case "last": n = { type: "last_performed", event: ev }; break;
    case "regular": n = { type: "regular", event: ev, period: "7d", periods: 4, min_periods: 3 }; break;
    case "then":
    case "dropped":
      n = { type: "sequence", steps: [{ event: ev }, { event: "" }], within: "1d" };
      if (from && from.steps) n.steps = from.steps;
      if (from && from.within) n.within = from.within;
      if (kind === "dropped") n.completed = false;
      break;
    case "trait": n = { type: "trait", key: "", operator: "eq", value: "" }; break;
    case "not_segment": n = { type: "not", condition: { type: "segment", segment: segmentOf(from) } }; break;
    default: n = { type: "segment", segment: segmentOf(from) };
  }
  var eventless = kind === "trait" || kind === "segment" || kind === "not_segment";
  if (filters && !eventless && kind !== "then" && kind !== "dropped") n.filters = filters;
  if (win && !eventless && kind !== "regular") n.window = win;
  return n;
}

// ``after(text)`` runs after each edit (sequence steps relabel the drop-off choices).
export function eventPicker(node, key, path, label, focusKey, after) {
  function set(text) { node[key] = text; if (after) after(); changed(); }
  return field(join(path, key), [combobox({
    label: label, value: node[key], path: join(path, key), placeholder: "event name", cls: "event-input", focusKey: focusKey,
    extra: [["$any", "$any — any event"]],
    params: function () { return { kind: "events" }; },
    onInput: set,
    onPick: set
  })], "bf-event");
}

// What a step's row reads, as the sentence does: "performed A", "then B", "but did not perform C".
export function stepWord(node, index) {
  if (index === 0) return "performed";
  if (node.completed !== false) return "then";
  var k = node.dropped_after;
  if (k === undefined || k === null) {
    if (index > 1) return "then";
    return node.steps.length > 2 ? "but did not complete" : "but did not perform";
  }
  if (index < k) return "then";
  return index === k ? "but did not perform" : "nor then";
}

function dropOffChoices(node) {
  var choices = [["", "at any step"]];
  for (var k = 1; k < node.steps.length; k += 1) {
    var name = node.steps[k - 1].event;
    choices.push([String(k), "after step " + k + (name ? ": " + name : "")]);
  }
  return choices;
}

// Steps of "performed steps in order" and "dropped off", and where the run dropped off.
function sequenceFields(node, path, kind) {
  var stepsWrap = h("ol", { class: "steps", "data-path": join(path, "steps") });
  node.steps = node.steps || [];
  var labels = [];
  var where = null;
  function relabel() {
    // Only what changed: rewriting an option mid-typeahead would reset the select's search.
    function text(el, value) { if (el.textContent !== value) el.textContent = value; }
    labels.forEach(function (label, index) {
      text(label, stepWord(node, index));
      label.parentNode.parentNode.classList.toggle("step-ignored", kind === "dropped" && node.dropped_after > 0 && index > node.dropped_after);
    });
    if (where) {
      dropOffChoices(node).forEach(function (choice, index) { text(where.options[index], choice[1]); });
    }
  }
  node.steps.forEach(function (step, index) {
    var spath = join(join(path, "steps"), index);
    var label = words(stepWord(node, index));
    label.classList.add("step-word");
    labels.push(label);
    stepsWrap.appendChild(h("li", { class: "step-row", "data-path": spath }, [
      h("div", { class: "step-line" }, [
        label,
        eventPicker(step, "event", spath, "Step " + (index + 1) + " event", spath + ":event", relabel),
        !readonly && node.steps.length > 2 ? iconButton("Remove step " + (index + 1), "×", function () {
          node.steps.splice(index, 1);
          if (node.dropped_after > 0) {
            // The step it dropped off after keeps its place: later steps move up one.
            if (index < node.dropped_after) node.dropped_after -= 1;
            node.dropped_after = Math.min(Math.max(node.dropped_after, 1), node.steps.length - 1);
          }
          structural(join(path, "steps") + ":add");
        }) : null
      ]),
      filtersEditor(step, spath, step.event)
    ]));
  });
  var line = [];
  if (kind === "dropped") {
    var current = node.dropped_after === undefined || node.dropped_after === null ? "" : node.dropped_after;
    where = select(dropOffChoices(node), current, "Dropped off where", function (v) {
      if (v === "") delete node.dropped_after; else node.dropped_after = Number(v);
      relabel();
      changed();
    }, { "data-focus-key": path + ":dropped_after", class: "dropoff-select" });
    line.push(field(join(path, "dropped_after"), [where]));
  }
  relabel();
  var tail = [words("within"), durationEditor(function () { return node.within; }, function (v) { node.within = v; }, "Within", join(path, "within")), windowEditor(node, path)];
  var addStep = !readonly && node.steps.length < 5 ? h("button", {
    type: "button", class: "btn btn-ghost btn-small", "data-focus-key": join(path, "steps") + ":add",
    onclick: function () { node.steps.push({ event: "" }); structural(join(join(path, "steps"), node.steps.length - 1) + ":event"); }
  }, ["+ step"]) : null;
  return { line: line, below: [stepsWrap, h("div", { class: "cond-line" }, tail.concat([addStep]))] };
}

export function conditionFields(node, path) {
  var kind = kindOf(node);
  var parts = [];
  if (kind === "did" || kind === "did_not" || kind === "first" || kind === "last" || kind === "regular") {
    parts.push(eventPicker(node, "event", path, "Event", path + ":event"));
    if (kind === "did") {
      parts.push(comparisonEditor(function () { return node.count; }, function (c) { node.count = c; }, COUNT_OPS, "How often", join(path, "count"), "times"));
    }
    if (kind === "regular") {
      parts.push(words("in at least"));
      parts.push(field(join(path, "min_periods"), [numberInput(node.min_periods, "In at least how many periods", function (v) { node.min_periods = v; changed(); }, { min: 1 })]));
      parts.push(words("of the last"));
      parts.push(field(join(path, "periods"), [numberInput(node.periods, "Out of how many periods", function (v) { node.periods = v; changed(); }, { min: 1 })]));
      parts.push(field(join(path, "period"), [select([["1d", "days"], ["7d", "weeks"], ["30d", "30-day periods"]], node.period, "Period", function (v) { node.period = v; changed(); })]));
    } else {
      parts.push(windowEditor(node, path));
    }
    return { line: parts, below: [filtersEditor(node, path, node.event)] };
  }
  if (kind === "aggregate") {
    parts.push(field(join(path, "function"), [select(FUNCTIONS, node.function, "Function", function (v) { node.function = v; changed(); })]));
    parts.push(words("of"));
    parts.push(field(join(path, "key"), [combobox({
      label: "Numeric property", value: node.key, path: join(path, "key"), placeholder: "property, e.g. revenue",
      params: function () { return { kind: "keys", source: "event", event: node.event || "" }; },
      onInput: function (t) { node.key = t; changed(); }, onPick: function (t) { node.key = t; changed(); }
    })]));
    parts.push(words("on"));
    parts.push(eventPicker(node, "event", path, "Event", path + ":event"));
    parts.push(words("is"));
    parts.push(comparisonEditor(function () { return { operator: node.operator, value: node.value }; },
      function (c) { node.operator = c.operator; node.value = c.value; }, NUMBER_OPS, "Compared with", path, ""));
    parts.push(windowEditor(node, path));
    return { line: parts, below: [filtersEditor(node, path, node.event)] };
  }
  if (kind === "then" || kind === "dropped") return sequenceFields(node, path, kind);
  if (kind === "trait") {
    return { line: propertyEditor(node, path, "trait", "", "Trait", path + ":key"), below: [] };
  }
  // segment, not_segment
  var target = kind === "not_segment" ? node.condition : node;
  var segmentPath = kind === "not_segment" ? join(join(path, "condition"), "segment") : join(path, "segment");
  var options = segments.filter(function (s) { return s.id !== selfId; }).map(function (s) { return [s.id, s.name]; });
  if (!options.length) return { line: [h("span", { class: "muted small", text: "No other segments yet." })], below: [] };
  if (target.segment == null) target.segment = Number(options[0][0]);
  return { line: [field(segmentPath, [select(options, target.segment, "Segment", function (v) { target.segment = Number(v); changed(); })])], below: [] };
}
