// Live progress of a broadcast: polls the JSON endpoint every 2 s while it is scheduled or sending.
(function () {
  "use strict";
  var card = document.getElementById("progress-card");
  if (!card || card.dataset.live !== "true") return;
  var number = function (n) { return n.toLocaleString("vi-VN"); };
  function render(p) {
    document.getElementById("bar").style.width = p.percent + "%";
    card.querySelector(".progress").setAttribute("aria-valuenow", p.percent);
    document.getElementById("percent").textContent = p.percent + "%";
    document.getElementById("finished").textContent = number(p.finished);
    document.getElementById("audience").textContent = number(p.audience);
    document.getElementById("status").textContent = p.status_label;
    var body = document.querySelector("#counts tbody");
    body.textContent = "";
    p.counts.forEach(function (c) {
      var row = body.insertRow();
      row.insertCell().textContent = c.label;
      row.insertCell().textContent = number(c.n);
    });
    if (!p.live) window.location.reload();  // the final report and the right buttons
  }
  function poll() {
    fetch(card.dataset.url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) { if (p) render(p); if (!p || p.live) setTimeout(poll, 2000); })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 2000);
})();
