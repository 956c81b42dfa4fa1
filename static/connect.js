// Kết nối Zalo OA: refresh the checklist every 5 s from /admin/zalo/status (no inline script: CSP-friendly).
(function () {
  var list = document.getElementById("checklist");
  if (!list) return;
  function refresh() {
    fetch(list.dataset.statusUrl, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body) return;
        body.steps.forEach(function (step) {
          var item = document.getElementById("step-" + step.key);
          if (!item) return;
          item.className = step.done ? "done" : "todo";
          item.querySelector(".mark").textContent = step.done ? "✓" : "•";
          item.querySelector(".state").textContent = step.done ? "xong" : "chưa xong";
          item.querySelector(".detail").textContent = step.detail;
        });
      })
      .catch(function () {});
  }
  setInterval(refresh, 5000);
})();
