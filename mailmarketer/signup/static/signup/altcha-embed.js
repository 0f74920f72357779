/* Mail Marketer: the ALTCHA widget on another site's page (the embed snippet).
   A browser refuses a worker script from another origin, and the widget (2.3.0) then gives up
   instead of solving in the page. So on a page of another origin the worker is made from a
   blob on that page that imports our worker script (a classic script may be imported across
   origins). Loaded after altcha.js, which defines the function replaced here. */
(function () {
  "use strict";
  var src = document.currentScript && document.currentScript.src;
  if (!src) return;
  var make = globalThis.altchaCreateWorker;
  globalThis.altchaCreateWorker = function (url) {
    var worker = new URL(url || "altcha/worker.js", src);
    if (worker.origin === location.origin && make) return make(url);
    var code = "importScripts(" + JSON.stringify(worker.href) + ");";
    return new Worker(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
  };
})();
