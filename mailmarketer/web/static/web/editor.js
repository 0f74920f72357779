// The campaign editor (campaigns/edit.html): after each live preview fragment (htmx) that
// rendered, post the same unsaved form into the preview frame; the desktop/mobile width
// toggle; image upload and insertion into the body. The page works without this file: the
// form saves, and the images section uploads with a normal post.
(function () {
  "use strict";

  function refreshFrame() {
    var button = document.querySelector("[data-live-frame-submit]");
    if (!button || !button.form) { return; }
    if (button.form.requestSubmit) {
      button.form.requestSubmit(button);
    } else {
      button.click();
    }
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    var result = document.getElementById("live-result");
    if (result && result.hasAttribute("data-ok") && event.detail.target &&
        (event.detail.target === result || event.detail.target.id === "live-result")) {
      refreshFrame();
    }
  });

  function setWidth(width) {
    var box = document.querySelector(".editor-frame-box");
    if (!box) { return; }
    box.setAttribute("data-width", width);
    document.querySelectorAll("[data-preview-width]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-preview-width") === width ? "true" : "false");
    });
    var frame = document.getElementById("live-frame");
    if (frame && window.mmFitFrame) { window.mmFitFrame(frame); }
  }

  // -- images ----------------------------------------------------------------------------------

  function body() { return document.getElementById("id_body"); }

  function tagFor(url, alt) {
    var format = document.getElementById("id_body_format");
    var kind = format ? format.value : "markdown";
    if (kind === "markdown") { return "![" + alt.replace(/[\[\]]/g, "") + "](" + url + ")"; }
    if (kind === "html") {
      var img = document.createElement("img");
      img.setAttribute("src", url);
      img.setAttribute("alt", alt);
      return img.outerHTML;
    }
    return url;
  }

  function insert(text) {
    var area = body();
    if (!area) { return; }
    var start = area.selectionStart != null ? area.selectionStart : area.value.length;
    var end = area.selectionEnd != null ? area.selectionEnd : start;
    var before = area.value.slice(0, start);
    var after = area.value.slice(end);
    var gap = before && !/\n$/.test(before) ? "\n" : "";
    area.value = before + gap + text + "\n" + after;
    var at = (before + gap + text + "\n").length;
    area.setSelectionRange(at, at);
    area.focus();
    area.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function status(text) {
    var el = document.getElementById("image-status");
    if (el) { el.textContent = text; }
  }

  function upload(form) {
    var data = new FormData(form);
    status("Uploading…");
    return fetch(form.action, {
      method: "POST",
      body: data,
      headers: { "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      return response.json().then(function (answer) {
        if (!response.ok) { throw new Error(answer.error || "the upload failed"); }
        return answer;
      });
    }).then(function (answer) {
      var alt = answer.filename.replace(/\.[^.]+$/, "");
      insert(tagFor(answer.url, alt));
      status("Inserted " + answer.filename + ".");
      form.reset();
    }).catch(function (error) {
      status("The image was not uploaded: " + error.message);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-preview-width]").forEach(function (button) {
      button.addEventListener("click", function () {
        setWidth(button.getAttribute("data-preview-width"));
      });
    });

    var form = document.getElementById("image-form");
    var input = form ? form.querySelector("input[type=file]") : null;
    var tools = document.querySelector(".editor-image-tools");
    if (form && input && tools && body()) {
      tools.hidden = false;
      tools.querySelector("[data-image-pick]").addEventListener("click", function () {
        input.click();
      });
      input.addEventListener("change", function () {
        if (input.files && input.files.length) { upload(form); }
      });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        if (input.files && input.files.length) { upload(form); }
      });
    }
    document.querySelectorAll("[data-image-insert]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        insert(tagFor(button.getAttribute("data-image-insert"), button.getAttribute("data-image-alt") || ""));
      });
    });
  });
})();
