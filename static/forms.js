// Form behaviour without inline JavaScript: pages carry data only in data-* attributes, which the browser
// never runs (a staff-typed name inside an inline handler could).
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    if (form.hasAttribute("data-once")) {  // a double click sends the form once
      var button = form.querySelector("button");
      if (button) setTimeout(function () { button.disabled = true; }, 0);
    }
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-print]")) window.print();
  });
})();
