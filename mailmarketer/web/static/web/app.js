// Small progressive enhancements; every page works without this file.
document.addEventListener("change", function (event) {
  var el = event.target;
  if (el.matches && el.matches("select[data-autosubmit]") && el.form) {
    el.form.submit();
  }
});
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".js-hide").forEach(function (el) { el.hidden = true; });
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var target = document.getElementById(button.getAttribute("data-copy"));
      if (target && navigator.clipboard) {
        navigator.clipboard.writeText(target.textContent.trim());
        button.textContent = "Copied";
      }
    });
  });
});

// A short name (the address part of a URL) suggested from the name until the person edits it
// themselves: first-run setup's workspace, a new list. The server checks it either way.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-slug-from]").forEach(function (form) {
    var source = document.getElementById(form.getAttribute("data-slug-from"));
    var target = document.getElementById(form.getAttribute("data-slug-to"));
    if (!source || !target) { return; }
    var edited = target.value !== "";
    target.addEventListener("input", function () { edited = target.value !== ""; });
    source.addEventListener("input", function () {
      if (edited) { return; }
      target.value = source.value
        .normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, "-")
        .replace(/^-+|-+$/g, "")
        .slice(0, 50)
        .replace(/-+$/, "");
    });
  });
});
