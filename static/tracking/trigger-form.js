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
  });
})();
