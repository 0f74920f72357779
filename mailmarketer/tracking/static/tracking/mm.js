/* Mail Marketer website snippet: page views (also single-page-app navigation), outbound
   clicks, downloads and mm('event', name, props). Sends nothing when Do Not Track or Global
   Privacy Control is on; sets no cookie; loads nothing; posts only to the host it came from. */
(function (w, d) {
  var s = d.currentScript, n = navigator, L = location, H = history;
  if (!s) return;
  var site = s.getAttribute("data-site"), end = s.src.replace(/\/t\/mm\.js.*$/, "/t/e");
  var off = n.doNotTrack == "1" || w.doNotTrack == "1" || n.globalPrivacyControl === true;
  var P = "mm_vt", vt = null, last = null, prev = d.referrer;
  var DL = /\.(pdf|zip|gz|tgz|bz2|xz|7z|rar|dmg|exe|msi|deb|rpm|apk|iso|csv|xlsx?|docx?|pptx?|odt|ods|epub|mp3|mp4|mov|avi|mkv|wav)$/i;
  try {
    var u = new URL(L.href), t = u.searchParams.get(P), ls = w.localStorage;
    if (t) {
      u.searchParams["delete"](P);
      H.replaceState(H.state, "", u.pathname + u.search + u.hash);
    }
    if (off) ls.removeItem(P);
    else {
      if (t) ls.setItem(P, t);
      vt = ls.getItem(P);
    }
  } catch (e) {}
  function send(k, x) {
    if (off) return;
    var b = { s: site, k: k, u: L.href, r: prev, t: d.title,
      i: Math.random().toString(36).slice(2) + Date.now().toString(36) };
    for (var a in x) b[a] = x[a];
    if (vt) b.v = vt;
    b = JSON.stringify(b);
    try {
      if (n.sendBeacon && n.sendBeacon(end, b)) return;
    } catch (e) {}
    try {
      fetch(end, { method: "POST", body: b, keepalive: true, credentials: "omit",
        headers: { "Content-Type": "text/plain" } })["catch"](function () {});
    } catch (e) {}
  }
  function view() {
    var here = L.pathname + L.search;
    if (here === last) return;
    if (last !== null) prev = L.protocol + "//" + L.host + last;
    last = here;
    send("p");
  }
  function wrap(name) {
    var orig = H[name];
    H[name] = function () {
      var r = orig.apply(this, arguments);
      setTimeout(view, 0); // after the app has set the new page's title
      return r;
    };
  }
  wrap("pushState");
  wrap("replaceState");
  w.addEventListener("popstate", function () {
    setTimeout(view, 0);
  });
  function click(e) {
    var a = e.target && e.target.closest && e.target.closest("a[href]");
    if (!a || !/^https?:$/.test(a.protocol)) return;
    if (DL.test(a.pathname) || a.hasAttribute("download")) send("d", { g: a.href });
    else if (a.host !== L.host) send("o", { g: a.href });
  }
  d.addEventListener("click", click, true);
  d.addEventListener("auxclick", click, true);
  var q = (w.mm && w.mm.q) || [];
  w.mm = function (c, name, props) {
    if (c === "event" && name) send("e", { n: String(name), p: props || null });
  };
  for (var i = 0; i < q.length; i++) w.mm.apply(w, q[i]);
  view();
})(window, document);
