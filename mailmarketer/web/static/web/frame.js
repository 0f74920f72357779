// Message frames sized to the message, so that its footer is never cut off: the campaign
// preview, the editor's live preview and the outbox mark their frame with data-fit-frame.
//
// The frame must be readable by this page: sandbox="allow-same-origin" without allow-scripts
// (and the frame's own Content-Security-Policy `sandbox allow-same-origin` with no script
// source), so the message still runs no script, submits nothing and cannot navigate this page;
// only this script measures it. Where the frame cannot be read, it keeps its CSS height.
(function () {
  "use strict";

  function fit(frame) {
    var doc;
    try { doc = frame.contentDocument; } catch (e) { return; }
    if (!doc || !doc.documentElement) { return; }
    // A document is never shorter than its frame: shrink the frame to its CSS minimum first,
    // so that a shorter message (the editor renders again and again) shrinks it too. Both
    // writes happen before the next paint, so nothing flickers.
    var before = frame.style.height;
    frame.style.height = "0px";
    var height = Math.max(
      doc.documentElement.scrollHeight,
      doc.body ? doc.body.scrollHeight : 0
    );
    frame.style.height = height > 0 ? (height + 4) + "px" : before;
  }

  function observe(frame) {
    var doc;
    try { doc = frame.contentDocument; } catch (e) { return; }
    if (!doc || !doc.documentElement) { return; }
    // Late images and a change of width (the editor's mobile toggle) change the height.
    doc.querySelectorAll("img").forEach(function (img) {
      img.addEventListener("load", function () { fit(frame); });
    });
    if (window.ResizeObserver) {
      if (frame.mmObserver) { frame.mmObserver.disconnect(); }
      frame.mmObserver = new ResizeObserver(function () { fit(frame); });
      frame.mmObserver.observe(doc.documentElement);
    }
  }

  function watch(frame) {
    if (frame.mmWatched) { return; }
    frame.mmWatched = true;
    frame.addEventListener("load", function () { fit(frame); observe(frame); });
    // The frame may have loaded before this script ran.
    fit(frame);
    observe(frame);
  }

  function watchAll() {
    document.querySelectorAll("iframe[data-fit-frame]").forEach(watch);
  }

  window.mmFitFrame = fit;
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", watchAll);
  } else {
    watchAll();
  }
  window.addEventListener("resize", function () {
    document.querySelectorAll("iframe[data-fit-frame]").forEach(fit);
  });
})();
