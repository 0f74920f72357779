// First-run setup: suggest the workspace address from its name until the person edits the
// address themselves. The server checks the address either way.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-slug-from]");
  if (!form) { return; }
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
