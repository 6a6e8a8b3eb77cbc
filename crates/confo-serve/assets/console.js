// confo console: the filter that survives navigation, confirmations, the editor's dirty flag
// and live updates. No build step; htmx does the requests.
(function () {
  "use strict";

  // Filters: rows of every table[data-filtered] whose data-name contains the text. The text is
  // kept per page (localStorage), so coming back to a page keeps its filter.
  var filter = document.querySelector("input[data-filter]");
  if (filter) {
    var key = "confo-filter:" + location.pathname;
    var apply = function () {
      var text = filter.value.toLowerCase();
      try { localStorage.setItem(key, filter.value); } catch (e) {}
      document.querySelectorAll("table[data-filtered] tbody tr").forEach(function (row) {
        var name = (row.getAttribute("data-name") || "").toLowerCase();
        row.hidden = text !== "" && name.indexOf(text) < 0;
      });
    };
    try { filter.value = localStorage.getItem(key) || ""; } catch (e) {}
    filter.addEventListener("input", apply);
    apply();
  }

  // Forms that ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  // The editor: dirty once typed in, clean once saved; live updates while it is open.
  var form = document.getElementById("editor-form");
  var editor = document.getElementById("editor");
  if (!form || !editor) { return; }
  var live = document.getElementById("live");
  editor.addEventListener("input", function () { editor.dataset.dirty = "1"; });
  document.body.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === "result" && target.querySelector("#saved")) { delete editor.dataset.dirty; }
  });
  var say = function (text) { live.textContent = text; };
  var config = form.getAttribute("data-config");
  var reload = function () {
    fetch(form.getAttribute("data-text"), { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) { return; }
      var version = (response.headers.get("ETag") || "").replace(/"/g, "");
      return response.text().then(function (text) {
        editor.value = text;
        document.getElementById("version").value = version;
        var shown = document.getElementById("version-shown");
        if (shown) { shown.textContent = version; }
        form.querySelector("input[name=existed]").value = "1";
        say("↻ Updated: someone else saved version " + version + " just now.");
        htmx.trigger(editor, "refresh");
      });
    });
  };
  if (window.EventSource) {
    var onEvent = function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.event === "resync") { if (!editor.dataset.dirty) { reload(); } return; }
      if (data.configuration !== config) { return; }
      if (data.event === "deleted") {
        say("⚠ Someone else deleted this configuration. Saving will create it again.");
        form.querySelector("input[name=existed]").value = "0";
      } else if (editor.dataset.dirty) {
        say("⚠ Someone else just saved this configuration. Saving your edit will report a conflict.");
      } else {
        reload();
      }
    };
    // A browser retries a stream that broke by itself, but not one the server refused (a 503
    // while the store is down, or a 429): then it is opened again here, waiting longer each
    // time, and what was missed meanwhile is read again (as after a resync).
    var delay = 1000;
    var connect = function (again) {
      var source = new EventSource(form.getAttribute("data-events"));
      ["created", "changed", "deleted", "resync"].forEach(function (kind) {
        source.addEventListener(kind, onEvent);
      });
      source.addEventListener("open", function () {
        delay = 1000;
        if (again) { onEvent({ data: '{"event":"resync"}' }); again = false; }
      });
      source.addEventListener("error", function () {
        if (source.readyState === EventSource.CLOSED) {
          setTimeout(function () { connect(true); }, delay);
          delay = Math.min(delay * 2, 30000);
        }
      });
    };
    connect(false);
  }
})();
