// The campaign editor's small enhancements: the holdout slider's number, and trait variables
// inserted where the cursor was in the last content field focused. Everything else is htmx.
(function () {
  "use strict";
  var lastField = null;
  document.addEventListener("focusin", function (event) {
    if (event.target.classList && event.target.classList.contains("variant-content")) lastField = event.target;
  });
  document.addEventListener("input", function (event) {
    if (event.target.id === "c-holdout") {
      var out = document.getElementById("holdout-out");
      if (out) out.textContent = event.target.value;
    }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-insert]") : null;
    if (!button) return;
    var field = lastField || document.querySelector(".variant-content[name$='-body']");
    if (!field) return;
    var text = button.getAttribute("data-insert");
    var start = field.selectionStart == null ? field.value.length : field.selectionStart;
    var end = field.selectionEnd == null ? start : field.selectionEnd;
    field.value = field.value.slice(0, start) + text + field.value.slice(end);
    field.focus();
    field.setSelectionRange(start + text.length, start + text.length);
    field.dispatchEvent(new Event("input", { bubbles: true }));
  });
})();
