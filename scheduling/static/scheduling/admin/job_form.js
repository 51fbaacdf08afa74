/* The job form's live schedule preview: as the schedule type, expression or
 * time zone change, ask the admin's schedule-preview view (which uses
 * scheduling.beat.schedule_preview) and show the schedule in words and its
 * next runs, or the reason it is invalid.
 *
 * On the add page, the fieldsets of every kind are there (".ops-kind-<kind>",
 * scheduling/admin/jobs.py): only those of the kind chosen are shown. */
(function () {
  "use strict";

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function render(box, data) {
    box.textContent = "";
    if (!data.valid) {
      box.appendChild(element("div", "ops-preview-error", data.error || "Invalid schedule."));
      return;
    }
    var words = element("div", "ops-preview-words", "In words: ");
    words.appendChild(element("strong", "", data.description || "(cannot be phrased; see the runs below)"));
    box.appendChild(words);
    if (data.note) box.appendChild(element("div", "ops-preview-hint", data.note));
    var runs = data.next_runs_display || [];
    if (runs.length) {
      box.appendChild(element("div", "", "Next runs (" + data.timezone + "):"));
      var list = element("ol", "ops-preview-runs");
      runs.forEach(function (run) { list.appendChild(element("li", "", run)); });
      box.appendChild(list);
    } else if (!data.note) {
      box.appendChild(element("div", "ops-preview-hint", "No future runs."));
    }
  }

  function init() {
    var box = document.getElementById("schedule-preview");
    var type = document.getElementById("id_schedule_type");
    var expression = document.getElementById("id_schedule_expression");
    var zone = document.getElementById("id_timezone");
    if (!box || !type || !expression) return;
    // Shown right under the schedule's own fields.
    var row = (zone || expression).closest(".form-row");
    if (row && row.parentNode) row.parentNode.insertBefore(box, row.nextSibling);

    var timer = null;
    var latest = 0;
    function update() {
      if (!expression.value.trim() && type.value !== "manual") {
        box.textContent = "";
        box.appendChild(element("div", "ops-preview-hint", "Fill in a schedule to see its next runs."));
        return;
      }
      var params = new URLSearchParams({
        schedule_type: type.value,
        schedule_expression: expression.value,
        timezone: zone ? zone.value : "UTC"
      });
      var request = ++latest;
      box.classList.add("ops-loading");
      fetch(box.getAttribute("data-url") + "?" + params.toString(), {
        credentials: "same-origin", headers: {"Accept": "application/json"}
      }).then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      }).then(function (data) {
        if (request === latest) render(box, data);
      }).catch(function (error) {
        if (request !== latest) return;
        box.textContent = "";
        box.appendChild(element("div", "ops-preview-error", "Preview unavailable: " + error.message));
      }).then(function () {
        if (request === latest) box.classList.remove("ops-loading");
      });
    }
    function soon() {
      window.clearTimeout(timer);
      timer = window.setTimeout(update, 250);
    }
    [type, expression, zone].forEach(function (field) {
      if (!field) return;
      field.addEventListener("input", soon);
      field.addEventListener("change", soon);
    });
    if (!box.hasAttribute("data-rendered")) update();
  }

  function initKinds() {
    var kind = document.getElementById("id_kind");
    var sets = document.querySelectorAll("fieldset.ops-kind");
    if (!kind || !sets.length) return;
    function show() {
      var own = document.querySelector("fieldset.ops-kind-spec.ops-kind-" + kind.value);
      var generic = kind.value === "task" ? "ops-kind-task" : "ops-kind-other";
      sets.forEach(function (set) {
        set.hidden = own ? set !== own : !set.classList.contains(generic);
      });
    }
    kind.addEventListener("change", show);
    show();
  }

  function start() { init(); initKinds(); }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
