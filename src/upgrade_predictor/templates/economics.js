/* The targeting section's economics panel. For an offer cost, upgrade value and budget typed into the
   page it recomputes the recommended cut-off and its two alternatives, the break-even offer cost, the
   profit curve and the policy table from the scores embedded beside this script, with no network.

   It mirrors upgrade_predictor.targeting step by step (ranked, profit_curve, best_policy,
   threshold_for_share, policy_outcomes, recommend_policies, per_1000, break_even_cost,
   offers_for_budget), in the same floating-point operations and order, so every figure equals
   targeting.what_if's for the same economics; and reporting/format.py's formats, rounding halves to
   even as Python does. Written by hand: the page has to work offline and without any library. */
(function () {
  "use strict";

  const source = document.getElementById("economics-data");
  const panel = document.getElementById("economics");
  if (!source || !panel) return;
  const data = JSON.parse(source.textContent);

  // ------------------------------------------------------------------ numbers as Python formats them

  // format(x, ".Nf") / format(x, ",.Nf"): the exact binary value rounded half to even. toFixed(100)
  // spells that exact value out; toFixed(N) itself would round a tie (2.5) up where Python gives 2.
  function fixed(x, digits, group) {
    if (!Number.isFinite(x)) return "n/a";
    const neg = x < 0 || Object.is(x, -0);
    const a = Math.abs(x);
    if (a >= 1e21) return String(x);
    const parts = a.toFixed(100).split(".");
    const kept = parts[0] + parts[1].slice(0, digits);
    const rest = parts[1].slice(digits);
    const first = rest.charCodeAt(0) - 48;
    const odd = (kept.charCodeAt(kept.length - 1) - 48) % 2 === 1;
    const up = first > 5 || (first === 5 && (/[1-9]/.test(rest.slice(1)) || odd));
    const t = (BigInt(kept) + (up ? 1n : 0n)).toString().padStart(digits + 1, "0");
    let whole = t.slice(0, t.length - digits);
    if (group) whole = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return (neg ? "-" : "") + whole + (digits > 0 ? "." + t.slice(t.length - digits) : "");
  }
  const money = (x) => fixed(x, 0, true);
  const num = (x, digits = 3) => (digits === 0 ? fixed(x, 0, true) : fixed(x, digits, false));
  const pct = (x, digits = 1) => (Number.isFinite(x) ? fixed(100 * x, digits, false) + "%" : "n/a");

  // Python's round(x) for the integer it returns: halves go to the even neighbour.
  function pyRound(x) {
    const f = Math.floor(x);
    const d = x - f;
    return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
  }

  // ------------------------------------------------------------------ the calculation

  // targeting.ranked and the economics-free part of profit_curve: scores descending, non-upgraders
  // first within a tie; one curve row per distinct score (a cut-off cannot split a tie).
  function prepare(part) {
    const n = part.p.length;
    const order = Array.from({ length: n }, (_, i) => i);
    order.sort((a, b) => part.p[b] - part.p[a] || part.y.charCodeAt(a) - part.y.charCodeAt(b));
    const p = Float64Array.from(order, (i) => part.p[i]);
    const cum = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) cum[i + 1] = cum[i] + (part.y.charCodeAt(order[i]) === 49 ? 1 : 0);
    const offers = [0];
    const reached = [0];
    const threshold = [Infinity];
    for (let i = 0; i < n; i++) {
      if (i === n - 1 || p[i + 1] !== p[i]) {
        offers.push(i + 1);
        reached.push(cum[i + 1]);
        threshold.push(p[i]);
      }
    }
    return { n, p, cum, total: cum[n], offers, reached, threshold };
  }

  const fit = prepare(data.fit);
  const test = prepare(data.eval);

  // targeting.profit_curve: profit and share offered at each cut-off.
  function curve(set, cost, value) {
    const k = set.offers.length;
    const profit = new Float64Array(k);
    const share = new Float64Array(k);
    for (let i = 0; i < k; i++) {
      profit[i] = set.reached[i] * value - set.offers[i] * cost;
      share[i] = set.offers[i] / Math.max(set.n, 1);
    }
    return { threshold: set.threshold, offers: set.offers, reached: set.reached, profit, share };
  }

  // targeting.threshold_for_share on the fit scores.
  function thresholdForShare(share) {
    if (share <= 0 || fit.n === 0) return Infinity;
    const k = Math.min(Math.max(pyRound(share * fit.n), 1), fit.n);
    return fit.p[k - 1];
  }

  // targeting.policy_outcomes' point values on the test rows; a cap keeps the best-ranked users.
  function outcome(thr, cost, value, cap) {
    let lo = 0;
    let hi = test.n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (test.p[mid] >= thr) lo = mid + 1;
      else hi = mid;
    }
    const offers = cap === null ? lo : Math.min(lo, cap);
    const reached = test.cum[offers];
    return {
      offers,
      upgraders_reached: reached,
      profit: reached * value - offers * cost,
      share_offered: offers / test.n,
      share_of_upgraders: reached / test.total,
      precision: reached / offers,
    };
  }

  // targeting.break_even_cost of the test rows.
  function breakEven(value) {
    const need = Math.max(Math.min(data.minOffers, test.n), 1);
    let reach = -Infinity;
    for (let i = 1; i < test.offers.length; i++) {
      if (test.offers[i] >= need) reach = Math.max(reach, test.reached[i] / test.offers[i]);
    }
    return (reach === -Infinity ? 0 : reach) * value;
  }

  // targeting.what_if: recommend_policies without the bootstrap, then per_1000.
  function compute(cost, value, budget) {
    const cap = budget === null ? null : Math.floor(budget / cost + 1e-9);
    const fc = curve(fit, cost, value);
    let best = 0;
    for (let i = 1; i < fc.profit.length; i++) {
      if (cap !== null && !(fc.share[i] * test.n <= cap)) break; // shares only grow along the curve
      if (fc.profit[i] > fc.profit[best]) best = i;
    }
    const share = fc.share[best];
    const candidates = [["recommended", fc.threshold[best], share]];
    if (share > 0) {
      const double = Math.min(2 * share, 1.0);
      candidates.push(["half the offers", thresholdForShare(share / 2), share / 2]);
      if (cap === null || double * test.n <= cap) {
        candidates.push(["double the offers", thresholdForShare(double), double]);
      }
    }
    const policies = candidates.map(([policy, threshold, planned]) => {
      const o = outcome(threshold, cost, value, cap);
      const row = { policy, threshold, planned_share: planned, budget: planned * test.n * cost, ...o };
      for (const f of ["offers", "upgraders_reached", "profit"]) {
        row[f + "_per_1000"] = (o[f] * 1000) / test.n;
      }
      return row;
    });
    return {
      offer_cost: cost,
      upgrade_value: value,
      budget,
      max_offers: cap,
      policies,
      curve: curve(test, cost, value),
      break_even_cost: breakEven(value),
      sends_offers: share > 0,
    };
  }

  // ------------------------------------------------------------------ the page

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c);
    return node;
  }
  // A figure with its unrounded value beside it, for whoever checks the page against Python.
  function figure(tag, field, value, text) {
    return el(tag, { "data-field": field, "data-value": String(value) }, text);
  }

  const $ = (id) => document.getElementById(id);
  const inputs = { cost: $("econ-cost"), value: $("econ-value"), budget: $("econ-budget") };
  const out = $("econ-out");
  const error = $("econ-error");
  const nTest = num(test.n, 0);

  function read() {
    const cost = inputs.cost.valueAsNumber;
    const value = inputs.value.valueAsNumber;
    const raw = inputs.budget.value.trim();
    const budget = raw === "" ? null : inputs.budget.valueAsNumber;
    if (!(Number.isFinite(cost) && cost > 0)) return "Enter an offer cost above 0.";
    if (!(Number.isFinite(value) && value >= 0)) return "Enter an upgrade value of 0 or more.";
    if (budget !== null && !(Number.isFinite(budget) && budget >= 0)) {
      return "Enter a budget of 0 or more, or leave it empty for no cap.";
    }
    return { cost, value, budget };
  }

  function summary(r) {
    const rec = r.policies[0];
    const econ = `offer cost ${String(r.offer_cost)} and upgrade value ${String(r.upgrade_value)}`;
    if (!r.sends_offers) {
      const why =
        r.max_offers === 0
          ? `A budget of ${String(r.budget)} pays for no offer at ${econ}.`
          : `No cut-off made a profit on the out-of-fold scores at ${econ}.`;
      return [el("strong", {}, "Policy: send no offers."), " " + why];
    }
    return [
      el("strong", {}, "Policy: "),
      "offer to users scoring ≥ ",
      figure("strong", "threshold", rec.threshold, num(rec.threshold)),
      " (about ",
      figure("span", "planned_share", rec.planned_share, pct(rec.planned_share)),
      ` of users; the most profitable cut-off on the out-of-fold scores at ${econ}` +
        (r.max_offers === null ? "" : " within the budget") +
        `). On the ${nTest} test users it sends `,
      figure("span", "offers", rec.offers, num(rec.offers, 0)),
      " offers, reaches ",
      figure("span", "upgraders_reached", rec.upgraders_reached, num(rec.upgraders_reached, 0)),
      " upgraders and makes a profit of ",
      figure("strong", "profit", rec.profit, money(rec.profit)),
      ".",
    ];
  }

  function breakEvenText(r) {
    const parts = [
      "Break-even offer cost: ",
      figure("strong", "break_even_cost", r.break_even_cost, num(r.break_even_cost, 2)),
      ". At the test users' best upgrade rate among the offers of a cut-off sending at least " +
        `${data.minOffers} of them, and an upgrade worth ${String(r.upgrade_value)}, ` +
        "an offer pays only if it costs less than that.",
    ];
    if (r.max_offers !== null) {
      const cap = figure("strong", "max_offers", r.max_offers, num(r.max_offers, 0));
      parts.push(" The budget pays for at most ", cap);
      parts.push(` offers to the ${nTest} test users.`);
    }
    return parts;
  }

  const COLUMNS = [
    ["threshold", (v) => num(v)],
    ["planned_share", (v) => pct(v)],
    ["budget", money],
    ["offers", (v) => num(v, 0)],
    ["upgraders_reached", (v) => num(v, 0)],
    ["share_of_upgraders", (v) => pct(v)],
    ["profit", money],
    ["offers_per_1000", (v) => num(v, 0)],
    ["upgraders_reached_per_1000", (v) => num(v, 0)],
    ["profit_per_1000", money],
  ];

  function tableRows(r) {
    return r.policies.map((row) =>
      el(
        "tr",
        { "data-policy": row.policy, class: row.policy === "recommended" ? "hl" : "" },
        el("td", { class: "l" }, row.policy),
        ...COLUMNS.map(([f, fmt]) => figure("td", f, row[f], fmt(row[f]))),
      ),
    );
  }

  // ------------------------------------------------------------------ the profit curve

  const SVG = "http://www.w3.org/2000/svg";
  const COLOURS = { recommended: "#d95f02", "half the offers": "#7570b3", "double the offers": "#1f1f1f" };
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // About five round steps (1, 2 or 5 times a power of ten) covering [lo, hi].
  function ticks(lo, hi) {
    const raw = (hi - lo) / 5;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
    const out = [];
    for (let t = Math.floor(lo / step) * step; t <= hi + step / 2; t += step) {
      out.push(Math.abs(t) < step / 1e6 ? 0 : t); // no "-0" from accumulated steps
    }
    return out;
  }

  function draw(r) {
    const chart = $("econ-chart");
    chart.replaceChildren();
    const W = 720, H = 290, L = 74, R = 18, T = 48, B = 44;
    const c = r.curve;
    let lo = 0, hi = 0;
    for (const v of c.profit) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    for (const p of r.policies) { lo = Math.min(lo, p.profit); hi = Math.max(hi, p.profit); }
    if (hi === lo) hi = lo + 1;
    const ys = ticks(lo, hi);
    lo = Math.min(lo, ys[0]);
    hi = Math.max(hi, ys[ys.length - 1]);
    const X = (s) => L + s * (W - L - R);
    const Y = (v) => T + ((hi - v) / (hi - lo)) * (H - T - B);
    const grey = "#999";
    for (const t of ys) {
      chart.append(svg("line", { x1: L, x2: W - R, y1: Y(t), y2: Y(t), stroke: t === 0 ? grey : "#e4e4e4" }));
      chart.append(svg("text", { x: L - 6, y: Y(t) + 4, "text-anchor": "end" }, money(t)));
    }
    for (let s = 0; s <= 1.0001; s += 0.2) {
      chart.append(svg("line", { x1: X(s), x2: X(s), y1: H - B, y2: H - B + 4, stroke: grey }));
      chart.append(svg("text", { x: X(s), y: H - B + 16, "text-anchor": "middle" }, pct(s, 0)));
    }
    if (r.max_offers !== null && r.max_offers < test.n) {
      const x = X(r.max_offers / test.n);
      const dash = { stroke: "#b00", "stroke-dasharray": "4 3" };
      chart.append(svg("line", { x1: x, x2: x, y1: T, y2: H - B, ...dash }));
      chart.append(svg("text", { x: x + 4, y: T + 10, fill: "#b00" }, "budget"));
    }
    // Thinned to the lowest and highest profit per pixel column: the drawn line keeps every peak.
    const keep = [];
    let column = null, first = 0, low = 0, high = 0;
    const flush = (last) => keep.push(...new Set([first, low, high, last].sort((a, b) => a - b)));
    for (let i = 0; i < c.profit.length; i++) {
      const px = Math.round(X(c.share[i]));
      if (px !== column) {
        if (column !== null) flush(i - 1);
        column = px; first = low = high = i;
      }
      if (c.profit[i] < c.profit[low]) low = i;
      if (c.profit[i] > c.profit[high]) high = i;
    }
    flush(c.profit.length - 1);
    const points = keep.map((i) => `${X(c.share[i]).toFixed(1)},${Y(c.profit[i]).toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { points, fill: "none", stroke: "#1b9e77", "stroke-width": 1.6 }));
    // Policies often sit close together on the curve: a colour each and a legend, not labels.
    let lx = L;
    for (const p of r.policies) {
      const colour = COLOURS[p.policy];
      const at = { cx: X(p.share_offered), cy: Y(p.profit) };
      chart.append(svg("circle", { ...at, r: 4, fill: colour, stroke: "white" }));
      chart.append(svg("circle", { cx: lx + 4, cy: 34, r: 4, fill: colour }));
      const name = p.policy === "recommended" && !r.sends_offers ? "recommended: no offers" : p.policy;
      const label = svg("text", { x: lx + 12, y: 38 }, name);
      chart.append(label);
      lx += 26 + (label.getComputedTextLength() || 6 * name.length);
    }
    const mid = { x: (L + W - R) / 2, "text-anchor": "middle" };
    chart.append(svg("text", { ...mid, y: H - 6 }, "share of test users offered, best scores first"));
    const yMid = (T + H - B) / 2;
    const turned = { x: 14, y: yMid, "text-anchor": "middle", transform: `rotate(-90 14 ${yMid})` };
    chart.append(svg("text", turned, `profit on ${nTest} test users`));
    const title = `Profit: upgrade value ${String(r.upgrade_value)}, offer cost ${String(r.offer_cost)}`;
    chart.append(svg("text", { ...mid, y: 16, "font-weight": "600" }, title));
  }

  // ------------------------------------------------------------------ wiring

  function update() {
    const got = read();
    if (typeof got === "string") {
      error.textContent = got;
      error.hidden = false;
      out.hidden = true;
      return;
    }
    error.hidden = true;
    out.hidden = false;
    const r = compute(got.cost, got.value, got.budget);
    $("econ-summary").replaceChildren(...summary(r));
    $("econ-breakeven").replaceChildren(...breakEvenText(r));
    $("econ-table").tBodies[0].replaceChildren(...tableRows(r));
    $("econ-print").textContent =
      `Figures below for offer cost ${String(r.offer_cost)}, upgrade value ${String(r.upgrade_value)}, ` +
      (r.budget === null ? "no budget cap." : `budget ${String(r.budget)}.`);
    draw(r);
  }

  function reset() {
    inputs.cost.value = String(data.offerCost);
    inputs.value.value = String(data.upgradeValue);
    inputs.budget.value = "";
    update();
  }

  // The panel's look lives with it: without this script the panel stays hidden and needs none.
  const style = document.createElement("style");
  style.textContent = `
.econ { border: 1px solid var(--rule); padding: 0.6rem 1rem; margin: 1rem 0; }
.econ h4 { margin: 0 0 0.5rem; font-size: 1rem; }
.econ-form { display: flex; flex-wrap: wrap; gap: 0.6rem 1.2rem; align-items: flex-end; }
.econ-form label { display: flex; flex-direction: column; font-size: 0.85rem; color: var(--muted); }
.econ-form input { width: 10rem; font: inherit; padding: 0.2rem 0.35rem; color: #222; }
.econ-form button { font: inherit; padding: 0.25rem 0.7rem; }
.econ svg { width: 100%; max-width: 720px; height: auto; display: block; font: 11px sans-serif; }
.econ-print { display: none; }
@media print {
  .econ-form { display: none; }
  .econ-print { display: block; }
  .econ { border: none; padding: 0; }
}`;
  document.head.append(style);

  $("econ-form").addEventListener("submit", (e) => e.preventDefault());
  for (const input of Object.values(inputs)) input.addEventListener("input", update);
  $("econ-reset").addEventListener("click", reset);
  panel.hidden = false; // first, so the drawing can measure its text
  reset();
  const still = $("profit-static");
  if (still) still.hidden = true; // the drawing above replaces the picture of the run's economics

  window.upgradeEconomics = { compute, format: { money, num, pct } };
})();
