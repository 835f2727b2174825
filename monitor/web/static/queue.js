// Refresh the queue's rows every 15 seconds without reloading the page (no build step).
(function () {
  "use strict";
  var body = document.getElementById("queue-rows");
  if (!body) { return; }
  var src = body.getAttribute("data-src");
  function refresh() {
    fetch(src, { credentials: "same-origin", headers: { "Accept": "text/html" }, redirect: "error" })
      .then(function (response) {
        if (!response.ok) { throw new Error("queue refresh: " + response.status); }
        return response.text();
      })
      .then(function (html) { body.innerHTML = html; })
      .catch(function () { /* signed out or offline: the next full load shows why */ });
  }
  setInterval(refresh, 15000);
})();
