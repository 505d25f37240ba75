// The trigger form shows the inputs of the chosen kind only.
(function () {
  "use strict";
  document.querySelectorAll("form[data-trigger-form]").forEach(function (form) {
    var kind = form.querySelector("select[name=kind]");
    var thresholds = form.querySelector("input[name=thresholds]");
    var defaults = { scroll: "25, 50, 75, 100", engaged_time: "180" };
    function show() {
      form.querySelectorAll("[data-for-kind]").forEach(function (el) {
        el.hidden = el.getAttribute("data-for-kind").split(" ").indexOf(kind.value) < 0;
      });
      if (thresholds) thresholds.placeholder = defaults[kind.value] || "";
    }
    kind.addEventListener("change", show);
    show();

    // The browser is the judge of a selector: say at once, next to the field, when it cannot read
    // one. Saving is not blocked here; the server names the problem precisely.
    var selector = form.querySelector("input[name=selector]");
    if (!selector) return;
    var field = selector.closest(".field");
    // The server's own message is about the value it was sent: it stands until that value changes.
    var serverErrors = Array.prototype.slice.call(field.querySelectorAll(".field-error"));
    var sentValue = selector.value;
    var note = document.createElement("p");
    note.className = "field-error";
    note.id = selector.id + "-syntax";
    note.hidden = true;
    note.textContent = "This is not a valid CSS selector: the browser cannot read it.";
    field.appendChild(note);
    function check() {
      var value = selector.value.trim();
      var serverError = serverErrors.length > 0 && selector.value === sentValue;
      serverErrors.forEach(function (el) { el.hidden = !serverError; });
      var valid = true;
      if (value && !serverError) {
        try { document.createDocumentFragment().querySelector(value); } catch (error) { valid = false; }
      }
      note.hidden = valid;
      var invalid = !valid || serverError;
      field.classList.toggle("has-error", invalid);
      var described = (selector.getAttribute("aria-describedby") || "").split(" ").filter(function (id) { return id && id !== note.id; });
      if (!valid) described.push(note.id);
      if (described.length) selector.setAttribute("aria-describedby", described.join(" ")); else selector.removeAttribute("aria-describedby");
      if (invalid) selector.setAttribute("aria-invalid", "true"); else selector.removeAttribute("aria-invalid");
    }
    selector.addEventListener("blur", check);
    selector.addEventListener("input", function () {
      if (!note.hidden) { check(); return; }
      if (serverErrors.length && selector.value !== sentValue) {
        serverErrors.forEach(function (el) { el.hidden = true; });
        field.classList.remove("has-error");
        selector.removeAttribute("aria-invalid");
      }
    });
  });
})();
