// A segment's page: the delete confirmation dialog, and the CSV export with its progress.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-dialog-open]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-dialog-open"));
      if (dialog && dialog.showModal) {
        dialog.returnFocus = opener;
        dialog.showModal();
      }
    }
    var closer = event.target.closest("[data-dialog-close]");
    if (closer) {
      var open = closer.closest("dialog");
      if (open) open.close();
    }
  });
  Array.prototype.forEach.call(document.querySelectorAll("dialog"), function (dialog) {
    dialog.addEventListener("close", function () { if (dialog.returnFocus) dialog.returnFocus.focus(); });
    dialog.addEventListener("click", function (event) { if (event.target === dialog) dialog.close(); });
  });

  // Large exports stream for a while: read the stream here, count the rows as they arrive, then
  // hand the file to the browser. Small ones just download. Delegated from the document: the page
  // swaps its live part (export box included) when a refresh lands.
  var LARGE = 5000;
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-export-link]");
    var box = link && link.closest("[data-export]");
    if (!box || !window.ReadableStream) return;
    var size = Number(box.getAttribute("data-export-size")) || 0;
    if (size < LARGE) return;
    var progressBox = box.querySelector(".export-progress");
    var bar = box.querySelector("progress");
    var text = box.querySelector("[data-export-text]");
    event.preventDefault();
    if (box.getAttribute("aria-busy") === "true") return;
    box.setAttribute("aria-busy", "true");
    progressBox.hidden = false;
    link.classList.add("is-busy");
    var rows = 0;
    var chunks = [];
    var decoder = new TextDecoder();
    var filename = "members.csv";
    fetch(link.href, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
      var match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
      if (match) filename = match[1];
      var reader = response.body.getReader();
      function pump() {
        return reader.read().then(function (step) {
          if (step.done) return;
          chunks.push(step.value);
          var piece = decoder.decode(step.value, { stream: true });
          for (var i = 0; i < piece.length; i++) if (piece.charCodeAt(i) === 10) rows += 1;
          var done = Math.max(0, rows - 1);
          bar.value = Math.min(done, size);
          text.textContent = done.toLocaleString("en-US") + " of " + size.toLocaleString("en-US") + " rows";
          return pump();
        });
      }
      return pump();
    }).then(function () {
      var blob = new Blob(chunks, { type: "text/csv" });
      var url = URL.createObjectURL(blob);
      var a = document.createElement("a");
      a.href = url;
      a.download = filename;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
      text.textContent = "Done: " + Math.max(0, rows - 1).toLocaleString("en-US") + " rows";
    }).catch(function (error) {
      text.textContent = "The export stopped (" + error.message + "). Try again.";
    }).then(function () {
      box.removeAttribute("aria-busy");
      link.classList.remove("is-busy");
    });
  });
})();
