/* Runs in the admin (scheduling/admin/executions.py).
 *
 * A run's page: while the run is queued or running (#ops-log[data-live]), ask
 * the log endpoint every few seconds for the lines after what the page shows,
 * append them (following the end unless the reader scrolled up), update the
 * progress bar, a workflow run's steps and the duration, and reload the page
 * once the run's status changes.
 *
 * The runs list: suggest job names in the job filter as you type, from the
 * admin's own autocomplete of jobs (the jobs this user may see).
 */
(function () {
  "use strict";

  function tailLog(log) {
    var url = log.getAttribute("data-tail-url");
    var offset = parseInt(log.getAttribute("data-offset"), 10) || 0;
    var status = log.getAttribute("data-status");
    var seconds = Math.max(1, parseFloat(log.getAttribute("data-seconds")) || 2);
    var failures = 0;

    function atEnd() {
      return log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    }

    function poll() {
      var request = new XMLHttpRequest();
      request.open("GET", url + "?offset=" + offset);
      request.setRequestHeader("Accept", "application/json");
      request.onload = function () {
        var data = null;
        try {
          data = request.status === 200 ? JSON.parse(request.responseText) : null;
        } catch (error) {  // a signed-out session answers the login page
          data = null;
        }
        if (!data) return retry();
        failures = 0;
        var follow = atEnd();
        if (data.reset) log.textContent = data.text;
        else if (data.text) log.appendChild(document.createTextNode(data.text));
        offset = data.offset;
        log.setAttribute("data-offset", String(offset));
        if (follow) log.scrollTop = log.scrollHeight;
        var progress = document.getElementById("ops-progress");
        if (progress && data.progress) progress.outerHTML = data.progress;
        var steps = document.getElementById("ops-steps");
        if (steps && data.steps) steps.outerHTML = data.steps;
        var duration = document.querySelector(".field-duration .readonly");
        if (duration && data.duration) duration.innerHTML = data.duration;
        if (data.status !== status) {
          window.location.replace(window.location.href);  // a GET: the page as the run now is
          return;
        }
        window.setTimeout(poll, (document.hidden ? 5 : 1) * seconds * 1000);  // slower while nobody looks
      };
      request.onerror = retry;
      request.send();
    }

    function retry() {  // the server restarting, a network blip: keep trying, slower
      failures += 1;
      window.setTimeout(poll, Math.min(30, seconds * Math.pow(2, failures)) * 1000);
    }

    log.scrollTop = log.scrollHeight;
    window.setTimeout(poll, seconds * 1000);
  }

  function suggestJobs(input) {
    var list = document.getElementById(input.getAttribute("list"));
    var base = input.getAttribute("data-autocomplete-url");
    var timer = null;
    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      var term = input.value.trim();
      if (!term) return;
      timer = window.setTimeout(function () {
        var request = new XMLHttpRequest();
        request.open("GET", base + "&term=" + encodeURIComponent(term));
        request.onload = function () {
          if (request.status !== 200) return;
          var results = JSON.parse(request.responseText).results || [];
          list.textContent = "";
          results.forEach(function (job) {
            var option = document.createElement("option");
            option.value = job.text;
            list.appendChild(option);
          });
        };
        request.send();
      }, 200);
    });
    // Picking a suggestion runs the filter at once.
    input.addEventListener("change", function () {
      if (input.value.trim()) input.form.submit();
    });
  }

  function start() {
    var log = document.getElementById("ops-log");
    if (log && log.getAttribute("data-live")) tailLog(log);
    var jobName = document.getElementById("ops-job-name");
    if (jobName) suggestJobs(jobName);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
