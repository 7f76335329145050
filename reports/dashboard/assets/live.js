// Refreshes the dashboard's live part in place: fetch /live, swap it in.
// Without this script the page reloads itself (noscript refresh).
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch) return;
  var every = parseInt(live.getAttribute("data-refresh-ms"), 10) || 5000;
  var src = live.getAttribute("data-src") || "/live";
  var updated = document.getElementById("updated");
  function tick() {
    if (document.hidden) { setTimeout(tick, every); return; }
    fetch(src, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        live.innerHTML = html;
        var stamp = document.getElementById("stamp");
        if (updated && stamp) updated.textContent = "updated " + stamp.textContent + " UTC";
        live.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { if (updated) updated.textContent = "offline, retrying"; })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
