// Line charts as SVG with labelled axes (no dependency). Every series is drawn with its own dash
// pattern as well as its colour, so a line that equals another stays visible, and a dot per sample.
const W = 640;
const H = 200;
const PAD = { left: 52, right: 12, top: 10, bottom: 38 };
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * step).find((candidate) => candidate >= value);
}

// spec: { title, xLabel, yLabel, xMin, xMax, xTick(value) -> text, yMax?, yTick?(value) -> text,
//         series: [{ name, class, points: [[x, y], ...] }] }
export function lineChart(spec) {
  const yMax = spec.yMax ?? niceMax(Math.max(0, ...spec.series.flatMap((s) => s.points.map((p) => p[1]))));
  const width = W - PAD.left - PAD.right;
  const height = H - PAD.top - PAD.bottom;
  const span = Math.max(1e-9, spec.xMax - spec.xMin);
  const x = (value) => PAD.left + width * (value - spec.xMin) / span;
  const y = (value) => PAD.top + height * (1 - value / yMax);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "line-chart",
    "aria-label": `${spec.title}: ${spec.yLabel} over ${spec.xLabel}` });
  root.append(svg("title", {}, spec.title));
  const yTick = spec.yTick ?? ((value) => (Number.isInteger(value) ? String(value) : value.toFixed(1)));
  for (let i = 0; i <= 4; i += 1) {
    const value = yMax * i / 4;
    root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(value), y2: y(value), class: "grid" }));
    root.append(svg("text", { x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end", class: "tick" }, yTick(value)));
  }
  for (let i = 0; i <= 4; i += 1) {
    const value = spec.xMin + span * i / 4;
    root.append(svg("line", { x1: x(value), x2: x(value), y1: PAD.top + height, y2: PAD.top + height + 4,
      class: "axis" }));
    root.append(svg("text", { x: x(value), y: PAD.top + height + 16, "text-anchor": "middle", class: "tick" },
      spec.xTick(value)));
  }
  root.append(svg("line", { x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: PAD.top + height, class: "axis" }));
  root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: PAD.top + height, y2: PAD.top + height,
    class: "axis" }));
  root.append(svg("text", { x: PAD.left + width / 2, y: H - 4, "text-anchor": "middle", class: "label" },
    spec.xLabel));
  root.append(svg("text", { x: 12, y: PAD.top + height / 2, "text-anchor": "middle", class: "label",
    transform: `rotate(-90 12 ${PAD.top + height / 2})` }, spec.yLabel));
  for (const series of spec.series) {
    const points = series.points.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(" ");
    root.append(svg("polyline", { points, class: `series ${series.class}`, "data-series": series.name }));
    for (const [px, py] of series.points) {
      root.append(svg("circle", { cx: x(px).toFixed(1), cy: y(py).toFixed(1), r: 3, class: `point ${series.class}` }));
    }
  }
  const legend = document.createElement("p");
  legend.className = "legend";
  for (const series of spec.series) {
    const item = document.createElement("span");
    item.className = `key ${series.class}`;
    item.textContent = series.name;
    legend.append(item);
  }
  const figure = document.createElement("figure");
  figure.className = "chart-figure";
  figure.append(root, legend);
  return figure;
}
