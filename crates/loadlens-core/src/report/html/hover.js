// Hover values for loadlens' charts (the HTML report and the live dashboard): a crosshair and
// a tooltip listing every line's value at the time (or percentile) nearest the mouse, read from
// the chart's data attributes (figure: data-x labels, data-px positions in SVG units, data-unit;
// each path.series: data-v values, empty where the line has no point). Elsewhere in a chart
// (bars, event markers) the tooltip shows the element's <title>. Without this script the
// report still shows every value: the same titles as the browser's own tooltips.
(() => {
  "use strict";
  let tip = null, last = null;
  const tipEl = () => {
    if (!tip) {
      tip = document.createElement("div");
      tip.id = "chart-tip";
      tip.setAttribute("role", "tooltip");
      tip.hidden = true;
      document.body.appendChild(tip);
    }
    return tip;
  };
  const hide = () => {
    if (tip) tip.hidden = true;
    document.querySelectorAll("line.crosshair").forEach(l => l.remove());
  };
  const place = (ev, rows) => {
    const t = tipEl();
    t.replaceChildren(...rows);
    t.hidden = false;
    const pad = 14, w = t.offsetWidth, h = t.offsetHeight;
    let x = ev.clientX + pad, y = ev.clientY + pad;
    if (x + w > innerWidth) x = Math.max(0, ev.clientX - pad - w);
    if (y + h > innerHeight) y = Math.max(0, ev.clientY - pad - h);
    t.style.left = x + "px";
    t.style.top = y + "px";
  };
  const row = (text, color, strong) => {
    const d = document.createElement("div");
    if (color) {
      const i = document.createElement("i");
      i.style.background = color;
      d.appendChild(i);
    }
    const s = document.createElement(strong ? "b" : "span");
    s.textContent = text;
    d.appendChild(s);
    return d;
  };
  // The series chart under the mouse: the column nearest to it.
  const series = (ev, fig, svg) => {
    // The fallback columns would add the browser's own tooltip: the script replaces them.
    fig.querySelectorAll("g.hover, path.series > title").forEach(g => g.remove());
    const px = fig.dataset.px.split(",").map(Number);
    if (!px.length || !svg.getScreenCTM()) return false;
    const pt = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(svg.getScreenCTM().inverse());
    let best = 0;
    for (let i = 1; i < px.length; i++) if (Math.abs(px[i] - pt.x) < Math.abs(px[best] - pt.x)) best = i;
    const unit = fig.dataset.unit || "";
    const rows = [row(fig.dataset.x.split(",")[best], null, true)];
    for (const p of fig.querySelectorAll("path.series")) {
      const v = (p.dataset.v || "").split(",")[best];
      if (v !== undefined && v !== "") rows.push(row(`${p.dataset.label} ${v}${unit}`, p.getAttribute("stroke")));
    }
    // On an event marker: the event too.
    const marker = ev.target.closest && ev.target.closest("g.marker");
    if (marker) {
      const t = marker.querySelector(":scope > title");
      if (t) {
        marker.dataset.tip = t.textContent;
        t.remove();
      }
      if (marker.dataset.tip) rows.push(row(marker.dataset.tip));
    }
    let line = svg.querySelector("line.crosshair");
    if (!line) {
      line = document.createElementNS(svg.namespaceURI, "line");
      line.setAttribute("class", "crosshair");
      const frame = svg.querySelector("rect.frame");
      line.setAttribute("y1", frame ? frame.getAttribute("y") : 0);
      line.setAttribute("y2", frame ? Number(frame.getAttribute("y")) + Number(frame.getAttribute("height")) : 0);
      svg.appendChild(line);
    }
    line.setAttribute("x1", px[best]);
    line.setAttribute("x2", px[best]);
    place(ev, rows);
    return true;
  };
  // Any other element of a chart with a title (a bar segment, an event marker).
  const titled = (ev, fig) => {
    for (let el = ev.target; el && el !== fig; el = el.parentNode) {
      const t = el.querySelector ? el.querySelector(":scope > title") : null;
      if (t) {
        el.dataset.tip = t.textContent;
        t.remove();
      }
      if (el.dataset && el.dataset.tip) {
        place(ev, [row(el.dataset.tip)]);
        return true;
      }
    }
    return false;
  };
  const move = ev => {
    last = {clientX: ev.clientX, clientY: ev.clientY, target: ev.target};
    const fig = ev.target.closest && ev.target.closest("figure.chart");
    const svg = fig && fig.querySelector("svg");
    document.querySelectorAll("line.crosshair").forEach(l => { if (!svg || !svg.contains(l)) l.remove(); });
    if (!fig || !svg) return hide();
    if (fig.dataset.px && svg.contains(ev.target) && series(ev, fig, svg)) return;
    if (!titled(ev, fig)) hide();
  };
  document.addEventListener("mousemove", move);
  document.addEventListener("mouseleave", hide);
  // The dashboard redraws its charts every second: it calls this to show the tooltip again
  // where the mouse still is.
  window.loadlensHover = {
    refresh() {
      if (!last) return;
      const target = document.elementFromPoint(last.clientX, last.clientY);
      if (target) move({clientX: last.clientX, clientY: last.clientY, target});
    },
  };
})();
