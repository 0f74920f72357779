// Audience pages: small enhancements; every page works without this file.

// Forms marked data-swap-400 show their validation errors in place: htmx leaves 4xx responses
// unswapped by default, and a 400 here is the page telling the person what to fix.
document.addEventListener("htmx:beforeSwap", function (event) {
  var elt = event.detail.requestConfig && event.detail.requestConfig.elt;
  if (event.detail.xhr.status === 400 && elt && elt.closest && elt.closest("[data-swap-400]")) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});

// "Select all" on the subscribers page: shown only when this script runs.
function mmAudienceSetup(root) {
  (root || document).querySelectorAll("input[data-select-all]").forEach(function (box) {
    box.hidden = false;
  });
}
document.addEventListener("change", function (event) {
  var box = event.target;
  if (!box.matches || !box.matches("input[data-select-all]")) {
    return;
  }
  var form = box.closest("form");
  if (!form) {
    return;
  }
  form.querySelectorAll("input[type=checkbox][name=ids]").forEach(function (item) {
    item.checked = box.checked;
  });
});
if (window.htmx) {
  window.htmx.onLoad(mmAudienceSetup);
} else {
  document.addEventListener("DOMContentLoaded", function () { mmAudienceSetup(document); });
}
