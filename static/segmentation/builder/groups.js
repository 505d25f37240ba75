// Groups of conditions (all of / any of / none of), moving conditions between them, and the render
// of the whole document.

import { conditionFields, isNegatedSegment, kindOf, newCondition } from "./conditions.js";
import { cssEscape, field, h, iconButton, join, nextId, select } from "./dom.js";
import { placeErrors } from "./errors.js";
import { editor, readonly, rootSlot, state, structural } from "./state.js";
import { KINDS } from "./vocabulary.js";

// --- Groups ---------------------------------------------------------------------------

export function isGroup(n) { return n && (n.type === "and" || n.type === "or" || (n.type === "not" && !isNegatedSegment(n))); }

// The conditions a group shows, where they live in the document, and how to edit them.
export function groupView(node, path, isVirtual) {
  if (isVirtual) return { mode: "all", items: [node], paths: [path], listPath: path };
  if (node.type === "and" || node.type === "or") {
    var list = node.conditions || [];
    return { mode: node.type === "and" ? "all" : "any", items: list, listPath: join(path, "conditions"),
      paths: list.map(function (_, i) { return join(join(path, "conditions"), i); }) };
  }
  var child = node.condition;
  if (child && child.type === "or") {
    var inner = child.conditions || [];
    var base = join(join(path, "condition"), "conditions");
    return { mode: "none", items: inner, listPath: base, paths: inner.map(function (_, i) { return join(base, i); }) };
  }
  return { mode: "none", items: child ? [child] : [], paths: [join(path, "condition")], listPath: join(path, "condition") };
}

// The live array of a group's conditions, reshaping the document only when an edit needs it.
export function editableList(slot, isVirtual) {
  var node = slot.get();
  if (isVirtual) { var wrapped = { type: "and", conditions: [node] }; slot.set(wrapped); return wrapped.conditions; }
  if (node.type === "and" || node.type === "or") { node.conditions = node.conditions || []; return node.conditions; }
  if (!node.condition) { node.condition = { type: "or", conditions: [] }; return node.condition.conditions; }
  if (node.condition.type !== "or") node.condition = { type: "or", conditions: [node.condition] };
  node.condition.conditions = node.condition.conditions || [];
  return node.condition.conditions;
}

export function setMode(slot, isVirtual, newMode) {
  var list = editableList(slot, isVirtual).slice();
  var node = slot.get();
  Object.keys(node).forEach(function (k) { delete node[k]; });
  if (newMode === "none") { node.type = "not"; node.condition = { type: "or", conditions: list }; }
  else { node.type = newMode === "all" ? "and" : "or"; node.conditions = list; }
}

const JOINERS = { all: "and", any: "or", none: "nor" };

// ``outer`` is where a nested group sits in its parent ({slot, isVirtual, index}), for "move out".
export function renderGroup(slot, path, depth, isVirtual, parentTools, outer) {
  var node = slot.get();
  var view = groupView(node, path, isVirtual);
  var headId = nextId("gh");
  var box = h("div", { class: "bgroup depth-" + Math.min(depth, 4), role: "group", "aria-labelledby": headId, "data-path": isVirtual ? "(virtual)" : path });
  var modeSelect = select([["all", "all of"], ["any", "any of"], ["none", "none of"]], view.mode, depth === 0 ? "People who match" : "This group matches", function (m) {
    setMode(slot, isVirtual, m);
    structural((isVirtual ? "" : path) + ":mode");
  }, { "data-focus-key": (isVirtual ? "" : path) + ":mode" });
  var head = h("div", { class: "bgroup-head" }, [
    h("span", { id: headId, class: "bgroup-title" }, [depth === 0 ? "People who match " : "Match ", modeSelect, " these conditions"]),
    parentTools ? h("span", { class: "row-tools" }, parentTools) : null
  ]);
  box.appendChild(head);
  box.appendChild(h("div", { class: "slot-errors", "data-path": view.listPath }));
  if (view.listPath !== join(path, "conditions")) box.appendChild(h("div", { class: "slot-errors", "data-path": join(path, "conditions") }));
  var ol = h("ol", { class: "bconds" });
  view.items.forEach(function (child, index) {
    var childPath = view.paths[index];
    // A stable slot that does not reshape the document just to read it.
    var readSlot = {
      get: function () { return view.items[index]; },
      set: function (v) {
        if (isVirtual) { state.doc = v; return; }
        var arr = editableList(slot, false);
        arr[index] = v;
      }
    };
    var moveTools = readonly ? [] : [
      iconButton("Move up", "↑", function () { move(slot, isVirtual, index, -1, childPath); }, { disabled: index === 0, "data-focus-key": childPath + ":up" }),
      iconButton("Move down", "↓", function () { move(slot, isVirtual, index, 1, childPath); }, { disabled: index === view.items.length - 1, "data-focus-key": childPath + ":down" })
    ];
    if (!readonly && index > 0 && isGroup(view.items[index - 1])) {
      moveTools.push(iconButton("Move into the group above", "↱", function () { intoGroupAbove(slot, isVirtual, index, view.paths[index - 1]); }));
    }
    if (!readonly && outer) {
      moveTools.push(iconButton("Move out of this group", "↰", function () { outOfGroup(slot, index, outer); }));
    }
    var li = h("li", { class: "bcond-item" }, [index > 0 ? h("span", { class: "joiner", text: JOINERS[view.mode] }) : (view.mode === "none" ? h("span", { class: "joiner", text: "neither" }) : null)]);
    if (isGroup(child)) {
      var tools = moveTools.concat(readonly ? [] : [
        h("button", { type: "button", class: "btn btn-ghost btn-small", onclick: function () { ungroup(slot, isVirtual, index, view.listPath); } }, ["Ungroup"]),
        iconButton("Remove this group", "×", function () { removeAt(slot, isVirtual, index, path); })
      ]);
      li.appendChild(renderGroup(readSlot, childPath, depth + 1, false, tools, { slot: slot, isVirtual: isVirtual, index: index, listPath: view.listPath }));
    } else {
      li.appendChild(renderCondition(readSlot, childPath, moveTools.concat(readonly ? [] : [
        h("button", { type: "button", class: "btn btn-ghost btn-small", title: "Put this condition in a group of its own", "aria-label": "Group this condition", onclick: function () { wrapAt(slot, isVirtual, index, path); } }, ["Group"]),
        iconButton("Remove this condition", "×", function () { removeAt(slot, isVirtual, index, path); }, { "data-focus-key": childPath + ":remove" })
      ])));
    }
    ol.appendChild(li);
  });
  box.appendChild(ol);
  if (!view.items.length) {
    box.appendChild(h("p", { class: "bgroup-empty muted", text: depth === 0 ? "No conditions yet. Add one to see who matches." : "This group is empty: add a condition or remove it." }));
  }
  if (!readonly) {
    var addPath = isVirtual ? "" : path;
    box.appendChild(h("div", { class: "bgroup-add" }, [
      h("button", { type: "button", class: "btn btn-small", "data-focus-key": addPath + ":add", onclick: function () {
        var list = editableList(slot, isVirtual);
        list.push(newCondition("did"));
        var base = isVirtual ? "conditions" : groupView(slot.get(), path, false).listPath;
        structural(join(base, list.length - 1) + ":kind");
      } }, ["+ Condition"]),
      depth < 7 ? h("button", { type: "button", class: "btn btn-ghost btn-small", onclick: function () {
        var list = editableList(slot, isVirtual);
        list.push({ type: "or", conditions: [newCondition("did")] });
        var base = isVirtual ? "conditions" : groupView(slot.get(), path, false).listPath;
        structural(join(base, list.length - 1) + ":mode");
      } }, ["+ Group"]) : null
    ]));
  }
  return box;
}

export function renderCondition(slot, path, tools) {
  var node = slot.get();
  var kind = kindOf(node);
  var row = h("div", { class: "bcond", "data-path": path });
  var kindSelect = select(KINDS, kind, "Condition", function (k) {
    slot.set(newCondition(k, slot.get()));
    structural(path + ":kind");
  }, { "data-focus-key": path + ":kind", class: "kind-select" });
  var fields = conditionFields(node, path);
  var body = h("div", { class: "bcond-body" }, [h("div", { class: "cond-line" }, [field(join(path, "type"), [kindSelect])].concat(fields.line))]);
  fields.below.forEach(function (el) { body.appendChild(el); });
  row.appendChild(body);
  if (tools.length) row.appendChild(h("span", { class: "row-tools" }, tools));
  return row;
}

export function move(slot, isVirtual, index, delta, childPath) {
  var list = editableList(slot, isVirtual);
  var target = index + delta;
  if (target < 0 || target >= list.length) return;
  var item = list.splice(index, 1)[0];
  list.splice(target, 0, item);
  var newPath = childPath.replace(/\[(\d+)\]$/, "[" + target + "]");
  structural(newPath + (delta < 0 ? ":up" : ":down"));
}

export function removeAt(slot, isVirtual, index, path) {
  if (isVirtual) { state.doc = { type: "and", conditions: [] }; structural(":add"); return; }
  editableList(slot, false).splice(index, 1);
  structural(path + ":add");
}

export function wrapAt(slot, isVirtual, index, path) {
  var list = editableList(slot, isVirtual);
  list[index] = { type: "or", conditions: [list[index]] };
  var base = groupView(slot.get(), isVirtual ? "" : path, false).listPath;
  structural(join(base, index) + ":mode");
}

export function focusKeyOf(item, path) { return path + (isGroup(item) ? ":mode" : ":kind"); }

export function intoGroupAbove(slot, isVirtual, index, abovePath) {
  var list = editableList(slot, isVirtual);
  var item = list.splice(index, 1)[0];
  var above = { get: function () { return list[index - 1]; }, set: function (v) { list[index - 1] = v; } };
  var inner = editableList(above, false);
  inner.push(item);
  structural(focusKeyOf(item, join(groupView(list[index - 1], abovePath, false).listPath, inner.length - 1)));
}

// The condition goes right after its group in the parent; a group left empty goes too.
export function outOfGroup(slot, index, outer) {
  var list = editableList(slot, false);
  var item = list.splice(index, 1)[0];
  var outerList = editableList(outer.slot, outer.isVirtual);
  var at = list.length ? outer.index + 1 : outer.index;
  outerList.splice(at, list.length ? 0 : 1, item);
  var listPath = outer.isVirtual ? "conditions" : outer.listPath;
  structural(focusKeyOf(item, join(listPath, at)));
}

export function ungroup(slot, isVirtual, index, listPath) {
  var list = editableList(slot, isVirtual);
  var inner = groupView(list[index], "", false).items;
  list.splice.apply(list, [index, 1].concat(inner));
  structural(inner.length ? focusKeyOf(inner[0], join(listPath, index)) : join(listPath.replace(/\.conditions$/, ""), "") + ":add");
}


export function render() {
  var scrollY = window.scrollY;
  editor.replaceChildren(isGroup(state.doc) ? renderGroup(rootSlot(), "", 0, false, null) : renderGroup(rootSlot(), "", 0, true, null));
  if (state.pendingFocus) {
    var target = editor.querySelector('[data-focus-key="' + cssEscape(state.pendingFocus) + '"]');
    if (target && !target.disabled) target.focus();
    else { var first = editor.querySelector("select, input, button:not([disabled])"); if (first && state.pendingFocus) first.focus(); }
    state.pendingFocus = null;
  }
  window.scrollTo(0, scrollY);
  placeErrors(state.lastErrors);
}
