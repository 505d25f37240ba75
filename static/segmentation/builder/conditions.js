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
    default: return "group";
  }
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
    default: n = { type: "segment", segment: segments.length ? segments[0].id : null };
  }
  if (filters && kind !== "trait" && kind !== "segment" && kind !== "then" && kind !== "dropped") n.filters = filters;
  if (win && kind !== "trait" && kind !== "segment" && kind !== "regular") n.window = win;
  return n;
}

export function eventPicker(node, key, path, label, focusKey) {
  return field(join(path, key), [combobox({
    label: label, value: node[key], path: join(path, key), placeholder: "event name", cls: "event-input", focusKey: focusKey,
    extra: [["$any", "$any — any event"]],
    params: function () { return { kind: "events" }; },
    onInput: function (text) { node[key] = text; changed(); },
    onPick: function (text) { node[key] = text; changed(); }
  })], "bf-event");
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
      focusKey: path + ":key", markNonNumeric: true,
      params: function () { return { kind: "keys", source: "event", event: node.event || "", numeric: "1" }; },
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
  if (kind === "then" || kind === "dropped") {
    var stepsWrap = h("ol", { class: "steps", "data-path": join(path, "steps") });
    node.steps = node.steps || [];
    node.steps.forEach(function (step, index) {
      var spath = join(join(path, "steps"), index);
      stepsWrap.appendChild(h("li", { class: "step-row", "data-path": spath }, [
        h("div", { class: "step-line" }, [
          words(index === 0 ? "did" : (kind === "dropped" && index === 1 ? "but not then" : "then")),
          eventPicker(step, "event", spath, "Step " + (index + 1) + " event", spath + ":event"),
          !readonly && node.steps.length > 2 ? iconButton("Remove step " + (index + 1), "×", function () {
            node.steps.splice(index, 1); structural(join(path, "steps") + ":add");
          }) : null
        ]),
        filtersEditor(step, spath, step.event)
      ]));
    });
    var tail = [words("within"), durationEditor(function () { return node.within; }, function (v) { node.within = v; }, "Within", join(path, "within")), windowEditor(node, path)];
    var addStep = !readonly && node.steps.length < 5 ? h("button", {
      type: "button", class: "btn btn-ghost btn-small", "data-focus-key": join(path, "steps") + ":add",
      onclick: function () { node.steps.push({ event: "" }); structural(join(join(path, "steps"), node.steps.length - 1) + ":event"); }
    }, ["+ step"]) : null;
    return { line: [], below: [stepsWrap, h("div", { class: "cond-line" }, tail.concat([addStep]))] };
  }
  if (kind === "trait") {
    return { line: propertyEditor(node, path, "trait", "", "Trait", path + ":key"), below: [] };
  }
  // segment
  var options = segments.filter(function (s) { return s.id !== selfId; }).map(function (s) { return [s.id, s.name]; });
  if (!options.length) return { line: [h("span", { class: "muted small", text: "No other segments yet." })], below: [] };
  if (node.segment == null) node.segment = Number(options[0][0]);
  return { line: [field(join(path, "segment"), [select(options, node.segment, "Segment", function (v) { node.segment = Number(v); changed(); })])], below: [] };
}
