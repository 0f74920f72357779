// Draws every [data-chart] element with uPlot (vendored, web/static/web/vendor) from the JSON
// next to it (lib/charts.py shapes it). The same numbers are in the table below each chart, so
// nothing is lost without this file.
(function () {
  var COLOURS = ["#2563eb", "#16a34a", "#9ca3af", "#d97706", "#7c3aed", "#dc2626"];

  function draw(el) {
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (!source || typeof uPlot === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var series = [{}];
    var columns = [data.x];
    data.series.forEach(function (s, i) {
      series.push({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2 });
      columns.push(s.values);
    });
    var width = Math.max(el.clientWidth || 0, 320);
    var plot = new uPlot({ width: width, height: 260, series: series, scales: { x: { time: true } } },
      columns, el);
    el.chart = plot;
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart]").forEach(draw);
  });
})();
