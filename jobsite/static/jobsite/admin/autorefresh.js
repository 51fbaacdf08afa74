/* Reload a list or page while it shows a queued or running run.
 * The server decides: it adds <meta name="ops-autorefresh" content="SECONDS">
 * only then. The reload waits while the user is busy with the page (a row
 * ticked for an action, a field being edited, text selected, tab hidden). */
(function () {
  "use strict";

  function userIsBusy() {
    if (document.hidden) return true;
    if (document.querySelector("#result_list input.action-select:checked, #action-toggle:checked")) return true;
    var active = document.activeElement;
    if (active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName) && !/^(submit|button|checkbox)$/.test(active.type || "")) {
      return true;
    }
    var selection = window.getSelection ? String(window.getSelection()) : "";
    return selection.length > 0;
  }

  function start() {
    var meta = document.querySelector('meta[name="ops-autorefresh"]');
    if (!meta) return;
    var seconds = Math.max(1, parseFloat(meta.getAttribute("content")) || 5);
    function tick() {
      if (userIsBusy()) {
        window.setTimeout(tick, seconds * 1000);
        return;
      }
      window.location.replace(window.location.href);  // a GET, never a re-sent POST
    }
    window.setTimeout(tick, seconds * 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
