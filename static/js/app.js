// Small progressive enhancements for every page; each works without the others.
(function () {
  "use strict";

  // Tie each form control to its help text and errors, so screen readers announce them with it.
  Array.prototype.forEach.call(document.querySelectorAll(".field"), function (field) {
    var control = field.querySelector("input, select, textarea");
    if (!control) return;
    var ids = Array.prototype.map.call(field.querySelectorAll(".help[id], .field-error[id]"), function (el) { return el.id; });
    if (ids.length) control.setAttribute("aria-describedby", ids.join(" "));
    if (field.classList.contains("has-error")) control.setAttribute("aria-invalid", "true");
  });

  // After a refused form, put the cursor on the first field to fix.
  var firstInvalid = document.querySelector(".has-error input, .has-error select, .has-error textarea");
  if (firstInvalid) firstInvalid.focus();

  // Selects that act at once (workspace switcher, member roles). A pointer choice submits on change;
  // arrow keys only move the choice, and Enter or leaving the select submits it, so keyboard users
  // can look through the options without triggering each one.
  var keyed = false;
  function autosubmit(target) {
    return target && target.closest ? target.closest("select[data-autosubmit]") : null;
  }
  document.addEventListener("mousedown", function () { keyed = false; }, true);
  document.addEventListener("keydown", function (event) {
    var select = autosubmit(event.target);
    if (!select) return;
    if (event.key === "Enter" && select.hasAttribute("data-pending")) {
      event.preventDefault();
      select.removeAttribute("data-pending");
      select.form.requestSubmit();
    } else if (event.key !== "Tab" && event.key !== "Shift") {
      keyed = true;
    }
  });
  document.addEventListener("change", function (event) {
    var select = autosubmit(event.target);
    if (!select || !select.form) return;
    if (keyed) {
      select.setAttribute("data-pending", "");
      return;
    }
    select.form.requestSubmit();
  });
  document.addEventListener("focusout", function (event) {
    var select = autosubmit(event.target);
    if (select && select.form && select.hasAttribute("data-pending")) {
      select.removeAttribute("data-pending");
      select.form.requestSubmit();
    }
  });

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);

  document.addEventListener("click", function (event) {
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var input = document.querySelector(copy.getAttribute("data-copy"));
      if (!input) return;
      input.select();
      var done = function () { copy.textContent = "Copied"; setTimeout(function () { copy.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, function () {}); else { document.execCommand("copy"); done(); }
    }
    // A link to a folded section (segments' templates) unfolds it; the link's anchor scrolls there.
    var unfold = event.target.closest("[data-open-details]");
    if (unfold) {
      var details = document.getElementById(unfold.getAttribute("data-open-details"));
      if (details) details.open = true;
    }
    var toggle = event.target.closest("[data-nav-toggle]");
    if (toggle) {
      setNav(!document.body.classList.contains("nav-open"));
    } else if (document.body.classList.contains("nav-open") && !event.target.closest("#sidebar")) {
      setNav(false);
    }
  });

  // The folded navigation on small screens: a button toggles it, Escape or a click elsewhere closes it.
  function setNav(open) {
    var toggle = document.querySelector("[data-nav-toggle]");
    document.body.classList.toggle("nav-open", open);
    if (toggle) toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      var first = document.querySelector("#sidebar a");
      if (first) first.focus();
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && document.body.classList.contains("nav-open")) {
      setNav(false);
      var toggle = document.querySelector("[data-nav-toggle]");
      if (toggle) toggle.focus();
    }
  });
})();
