// Plots of the biolake browser (plotly.js). Each draw* takes the data a page embeds;
// clicking a point opens its variant, pair or phenotype page.
"use strict";

const SHADES = ["#1f4e79", "#7fa7cf"];
const CATEGORY_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                          "#7f7f7f", "#bcbd22", "#17becf"];
const CONFIG = {responsive: true, displaylogo: false};

function largest(values, floor) {   // Math.max(...values) overflows the stack beyond ~100k values
  let top = floor;
  for (const v of values) if (v > top) top = v;
  return top;
}

function thresholdLine(y) {
  return {type: "line", xref: "paper", x0: 0, x1: 1, y0: y, y1: y, line: {color: "#c0392b", dash: "dash", width: 1}};
}

function openOnClick(element, links) {
  element.on("plotly_click", (event) => {
    const link = links[event.points[0].pointIndex];
    if (link) window.location.href = link;
  });
}

function drawManhattan(id, data) {
  const element = document.getElementById(id);
  const trace = {x: data.x, y: data.y, text: data.text, hoverinfo: "text", type: "scattergl", mode: "markers",
                 marker: {size: 4, color: data.shade.map((s) => SHADES[s])}};
  const top = largest(data.y, data.threshold) * 1.08;
  Plotly.newPlot(element, [trace], {
    title: {text: "Manhattan"}, margin: {t: 40, r: 10}, hovermode: "closest", dragmode: "zoom",
    xaxis: {tickvals: data.ticks.values, ticktext: data.ticks.labels, title: {text: "chromosome"}},
    yaxis: {title: {text: "−log10 p"}, range: [0, top]}, shapes: [thresholdLine(data.threshold)],
  }, CONFIG).then(() => { openOnClick(element, data.links); element.dataset.ready = "1"; });
}

function drawQQ(id, data) {
  const element = document.getElementById(id);
  const top = largest(data.x, 1);
  const points = {x: data.x, y: data.y, text: data.text, hoverinfo: "text", type: "scattergl", mode: "markers",
                  marker: {size: 4, color: SHADES[0]}, name: "tests"};
  const diagonal = {x: [0, top], y: [0, top], mode: "lines", line: {color: "#c0392b", width: 1}, name: "null"};
  Plotly.newPlot(element, [points, diagonal], {
    title: {text: `QQ · λGC = ${data.lambda_gc.toFixed(3)}`}, margin: {t: 40, r: 10}, showlegend: false,
    xaxis: {title: {text: "expected −log10 p"}}, yaxis: {title: {text: "observed −log10 p"}},
  }, CONFIG).then(() => { element.dataset.ready = "1"; });
}

function drawPhewas(id, data) {
  const element = document.getElementById(id);
  const traces = data.traces.map((t, i) => ({
    x: t.x, y: t.y, text: t.text, name: t.name, hoverinfo: "text", type: "scatter", mode: "markers",
    marker: {size: 9, symbol: t.up.map((u) => (u ? "triangle-up" : "triangle-down")),
             color: CATEGORY_COLOURS[i % CATEGORY_COLOURS.length]}}));
  Plotly.newPlot(element, traces, {
    title: {text: "PheWAS: every phenotype of every run, grouped by IDP category"}, margin: {t: 40, r: 10},
    hovermode: "closest", xaxis: {showticklabels: false, title: {text: "phenotypes"}},
    yaxis: {title: {text: "−log10 p"}}, shapes: [thresholdLine(data.threshold)],
  }, CONFIG).then(() => {
    element.on("plotly_click", (event) => {
      const point = event.points[0];
      window.location.href = data.traces[point.curveNumber].links[point.pointIndex];
    });
    element.dataset.ready = "1";
  });
}

function drawRegion(id, data) {
  const element = document.getElementById(id);
  const trace = {x: data.x, y: data.y, text: data.text, hoverinfo: "text", type: "scattergl", mode: "markers",
                 marker: {size: 6, color: SHADES[0]}};
  Plotly.newPlot(element, [trace], {
    title: {text: "association in the window"}, margin: {t: 40, r: 10}, hovermode: "closest",
    xaxis: {title: {text: "position (bp)"}}, yaxis: {title: {text: "−log10 p"}},
    shapes: [thresholdLine(data.threshold)],
  }, CONFIG).then(() => { openOnClick(element, data.links); element.dataset.ready = "1"; });
}

function drawInteraction(id, data) {   // a pair's phenotype means ± SE by b's class, a line per class of a
  const element = document.getElementById(id);
  const traces = data.traces.map((t, i) => ({
    x: data.x, y: t.y, name: t.name, type: "scatter", mode: "lines+markers", connectgaps: false,
    error_y: {type: "data", array: t.se.map((se) => se ?? 0), visible: true},
    text: t.n.map((n, k) => `SE ${t.se[k] === null ? "NA" : t.se[k].toPrecision(3)} · n ${n}`),
    hovertemplate: "mean %{y:.4g}<br>%{text}",
    marker: {size: 8, color: CATEGORY_COLOURS[i]}, line: {color: CATEGORY_COLOURS[i]}}));
  Plotly.newPlot(element, traces, {
    title: {text: "mean by genotype (± SE)"}, margin: {t: 40, r: 10}, hovermode: "closest",
    xaxis: {title: {text: data.b}, type: "category"}, yaxis: {title: {text: "mean"}},
    legend: {title: {text: data.a}},
  }, CONFIG).then(() => { element.dataset.ready = "1"; });
}
