/* The targeting section's economics panel. For an offer cost, upgrade value, discount, assumed lift and
   budget typed into the page it recomputes the policies, their break-even lifts, the priced curve and
   the policy table from the scores embedded beside this script, with no network.

   It mirrors upgrade_predictor.targeting step by step (cutoffs, priced_curve, best_policy,
   threshold_for_share, policy_outcomes, recommend_policies, per_1000, offers_for_budget) and
   economics.Economics.profit / Lift.tau, in the same floating-point operations; sums run over the
   ranked users, so a sum may differ from Python's in its last bits (a cent at most on the page).
   Nothing is priced without a lift. Written by hand: the page has to work offline and without any
   library. */
(function () {
  "use strict";

  const source = document.getElementById("economics-data");
  const panel = document.getElementById("economics");
  if (!source || !panel) return;
  const data = JSON.parse(source.textContent);
  const NO_OFFER = 1 + Number.EPSILON; // targeting.NO_OFFER: math.nextafter(1.0, 2.0)

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

  // targeting.ranked: scores descending, non-upgraders first within a tie; prefix sums of the labels
  // and scores, and the last position of each tie (a cut-off cannot split a tie).
  function prepare(part) {
    const n = part.p.length;
    const order = Array.from({ length: n }, (_, i) => i);
    order.sort((a, b) => part.p[b] - part.p[a] || part.y.charCodeAt(a) - part.y.charCodeAt(b));
    const p = Float64Array.from(order, (i) => part.p[i]);
    const y = Float64Array.from(order, (i) => (part.y.charCodeAt(i) === 49 ? 1 : 0));
    const cum = new Float64Array(n + 1);
    const cumP = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) {
      cum[i + 1] = cum[i] + y[i];
      cumP[i + 1] = cumP[i] + p[i];
    }
    const ends = [];
    for (let i = 0; i < n; i++) if (i === n - 1 || p[i + 1] !== p[i]) ends.push(i);
    return { n, p, y, cum, cumP, total: cum[n], ends };
  }

  const fit = prepare(data.fit);
  const test = prepare(data.eval);

  // economics.Lift.parse: '20%' (relative to p) or '1.5pp' (absolute); "" is no lift.
  function parseLift(text) {
    if (text.trim() === "") return null;
    const m = /^\s*\+?(\d+(?:\.\d+)?|\.\d+)\s*(%|pp)\s*$/.exec(text);
    if (!m) return "Enter the lift as 20% (relative to each user's probability) or 1.5pp, or leave it empty.";
    const lift = { value: parseFloat(m[1]) / 100, relative: m[2] === "%" };
    if (!lift.relative && lift.value > 1) return "An absolute lift is a probability: at most 100pp.";
    return lift;
  }

  // Lift.tau and Economics.profit, one user at a time.
  const tau = (lift, p) => Math.min(lift.relative ? lift.value * p : lift.value, 1.0 - p);
  const realTau = (lift, y) => (lift.relative ? lift.value * y : lift.value);
  const gain = (e, p, t) => e.value * t - e.cost - e.discount * (p + t);

  // Running sums over the ranked users of tau, the expected and the realized profit.
  function priced(set, e, lift) {
    const inc = new Float64Array(set.n + 1);
    const profit = new Float64Array(set.n + 1);
    const real = new Float64Array(set.n + 1);
    if (lift === null) return { inc, profit, real };
    for (let i = 0; i < set.n; i++) {
      const t = tau(lift, set.p[i]);
      inc[i + 1] = inc[i] + t;
      profit[i + 1] = profit[i] + gain(e, set.p[i], t);
      const r = realTau(lift, set.y[i]);
      real[i + 1] = real[i] + gain(e, set.y[i], r);
    }
    return { inc, profit, real };
  }

  // targeting.priced_curve (cutoffs without a lift): one row per distinct score, after no offer.
  function curve(set, sums) {
    const offers = [0];
    const profit = [0];
    const real = [0];
    const share = [0];
    const threshold = [Infinity];
    for (const i of set.ends) {
      offers.push(i + 1);
      profit.push(sums.profit[i + 1]);
      real.push(sums.real[i + 1]);
      share.push((i + 1) / Math.max(set.n, 1));
      threshold.push(set.p[i]);
    }
    return { offers, profit, realized_profit: real, share, threshold };
  }

  // targeting.threshold_for_share on the fit scores.
  function thresholdForShare(share) {
    if (share <= 0 || fit.n === 0) return Infinity;
    const k = Math.min(Math.max(pyRound(share * fit.n), 1), fit.n);
    return fit.p[k - 1];
  }

  // economics.Economics.break_even_lift of the first `offers` ranked test users.
  function breakEven(e, offers, relative) {
    if (offers === 0) return NaN;
    const margin = e.value - e.discount;
    if (margin <= 0) return Infinity;
    const mean = test.cumP[offers] / offers;
    const t = (e.cost + e.discount * mean) / margin;
    if (!relative) return t;
    return mean > 0 ? t / mean : Infinity;
  }

  // targeting.policy_outcomes' point values on the test rows; a cap keeps the best-ranked users.
  function outcome(thr, e, lift, sums, cap) {
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
      expected_upgraders: test.cumP[offers],
      incremental_upgrades: lift === null ? NaN : sums.inc[offers],
      profit: lift === null ? NaN : sums.profit[offers],
      realized_profit: lift === null ? NaN : sums.real[offers],
      share_offered: offers / test.n,
      share_of_upgraders: reached / test.total,
      precision: reached / offers,
      break_even_lift: breakEven(e, offers, lift === null || lift.relative),
    };
  }

  // targeting._candidates: the best cut-off of the fit scores and half and double its offers, or
  // without a lift the unpriced audiences.
  function candidates(e, lift, cap) {
    if (lift === null) {
      const shares = data.unpriced.filter(([, s]) => cap === null || s * test.n <= cap);
      return shares.length ? shares : data.unpriced.slice(0, 1);
    }
    const fc = curve(fit, priced(fit, e, lift));
    let best = 0;
    for (let i = 1; i < fc.profit.length; i++) {
      if (cap !== null && !(fc.share[i] * test.n <= cap)) break; // shares only grow along the curve
      if (fc.profit[i] > fc.profit[best]) best = i;
    }
    const share = fc.share[best];
    if (share <= 0) return [["recommended", 0.0, NO_OFFER]];
    const out = [["recommended", share, fc.threshold[best]]];
    const double = Math.min(2 * share, 1.0);
    out.push(["half the offers", share / 2]);
    if (cap === null || double * test.n <= cap) out.push(["double the offers", double]);
    return out;
  }

  const PER_1000 = ["offers", "upgraders_reached", "incremental_upgrades", "profit", "realized_profit"];

  // targeting.what_if: recommend_policies without the bootstrap, then per_1000.
  function compute(cost, value, budget, lift, discount = 0) {
    const e = { cost, value, discount };
    const cap = budget === null ? null : Math.floor(budget / cost + 1e-9);
    const sums = priced(test, e, lift);
    const policies = candidates(e, lift, cap).map(([policy, planned, thr]) => {
      const threshold = thr === undefined ? thresholdForShare(planned) : thr;
      const o = outcome(threshold, e, lift, sums, cap);
      const row = { policy, priced: lift !== null, threshold, planned_share: planned };
      Object.assign(row, { budget: planned * test.n * cost }, o);
      for (const f of PER_1000) row[f + "_per_1000"] = (o[f] * 1000) / Math.max(test.n, 1);
      return row;
    });
    const first = lift === null ? policies.find((r) => r.planned_share === data.unpriced[1][1]) || policies[0] : policies[0];
    return {
      offer_cost: cost,
      upgrade_value: value,
      discount,
      lift,
      budget,
      max_offers: cap,
      policies,
      first,
      curve: curve(test, sums),
      sends_offers: lift !== null && policies[0].planned_share > 0,
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
  const inputs = {
    cost: $("econ-cost"),
    value: $("econ-value"),
    discount: $("econ-discount"),
    lift: $("econ-lift"),
    budget: $("econ-budget"),
  };
  const out = $("econ-out");
  const error = $("econ-error");
  const nTest = num(test.n, 0);

  // Python's format(x, "g") for the figures a user types (six significant digits, no trailing zeros).
  const g = (x) => String(Number(x.toPrecision(6)));
  // economics.Lift.describe, and a lift as the report writes it (reporting.campaign.Targeting.lift_text).
  function describe(lift) {
    const what = lift.relative
      ? `+${g(lift.value * 100)}% of each user's upgrade probability`
      : `+${g(lift.value * 100)} percentage points`;
    return `an assumed lift of ${what}`;
  }
  function liftText(v, relative) {
    if (!Number.isFinite(v)) return "no lift (nothing it could add pays)";
    return "+" + num(v * 100, 1) + (relative ? "%" : "pp");
  }

  function read() {
    const cost = inputs.cost.valueAsNumber;
    const value = inputs.value.valueAsNumber;
    const discount = inputs.discount.value.trim() === "" ? 0 : inputs.discount.valueAsNumber;
    const raw = inputs.budget.value.trim();
    const budget = raw === "" ? null : inputs.budget.valueAsNumber;
    if (!(Number.isFinite(cost) && cost > 0)) return "Enter an offer cost above 0.";
    if (!(Number.isFinite(value) && value >= 0)) return "Enter an upgrade value of 0 or more.";
    if (!(Number.isFinite(discount) && discount >= 0)) return "Enter a discount of 0 or more.";
    if (discount >= value && value > 0) return "A discount of at least the upgrade value: no offer could pay.";
    if (budget !== null && !(Number.isFinite(budget) && budget >= 0)) {
      return "Enter a budget of 0 or more, or leave it empty for no cap.";
    }
    const lift = parseLift(inputs.lift.value);
    if (typeof lift === "string") return lift;
    return { cost, value, discount, budget, lift };
  }

  function summary(r) {
    const econ = `offer cost ${g(r.offer_cost)}, upgrade value ${g(r.upgrade_value)} and discount ${g(r.discount)}`;
    if (r.lift === null) {
      return [
        el("strong", {}, "Policy: unpriced."),
        " No lift is assumed, so what an offer causes is unknown: give one above (as --assumed-lift takes it).",
      ];
    }
    const rec = r.policies[0];
    if (!r.sends_offers) {
      const why =
        r.max_offers === 0
          ? `A budget of ${g(r.budget)} pays for no offer at ${econ}.`
          : `Under ${describe(r.lift)}, no cut-off made an incremental profit on the out-of-fold scores at ${econ}.`;
      return [el("strong", {}, "Policy: send no offers."), " " + why];
    }
    return [
      el("strong", {}, "Policy: "),
      "offer to users scoring ≥ ",
      figure("strong", "threshold", rec.threshold, num(rec.threshold)),
      " (about ",
      figure("span", "planned_share", rec.planned_share, pct(rec.planned_share)),
      ` of users; the cut-off with the most expected incremental profit on the out-of-fold scores under ` +
        `${describe(r.lift)} at ${econ}` +
        (r.max_offers === null ? "" : " within the budget") +
        `). On the ${nTest} test users it sends `,
      figure("span", "offers", rec.offers, num(rec.offers, 0)),
      " offers, adds ",
      figure("span", "incremental_upgrades", rec.incremental_upgrades, num(rec.incremental_upgrades, 1)),
      " upgrades and makes an expected profit of ",
      figure("strong", "profit", rec.profit, money(rec.profit)),
      " (realized check ",
      figure("span", "realized_profit", rec.realized_profit, money(rec.realized_profit)),
      ").",
    ];
  }

  function breakEvenText(r) {
    const relative = r.lift === null || r.lift.relative;
    const who = r.sends_offers ? "the recommended policy" : `an offer to the top ${pct(r.first.planned_share, 0)} of users`;
    const v = r.first.break_even_lift;
    const parts = ["Break-even lift: ", figure("strong", "break_even_lift", v, liftText(v, relative)), ` for ${who}.`];
    if (r.max_offers !== null) {
      const cap = figure("strong", "max_offers", r.max_offers, num(r.max_offers, 0));
      parts.push(" The budget pays for at most ", cap);
      parts.push(` offers to the ${nTest} test users.`);
    }
    return parts;
  }

  const unpriced = (f) => (v, row) => (row.priced ? f(v) : "unpriced");
  const COLUMNS = [
    ["threshold", (v, row) => (row.offers > 0 ? num(v) : "none")],
    ["planned_share", (v) => pct(v)],
    ["budget", money],
    ["offers", (v) => num(v, 0)],
    ["upgraders_reached", (v) => num(v, 0)],
    ["share_of_upgraders", (v) => pct(v)],
    ["break_even_lift", (v, row) => (row.offers > 0 ? liftText(v, row.relative) : "n/a")],
    ["incremental_upgrades", unpriced((v) => num(v, 1))],
    ["profit", unpriced(money)],
    ["realized_profit", unpriced(money)],
    ["offers_per_1000", (v) => num(v, 0)],
    ["incremental_upgrades_per_1000", unpriced((v) => num(v, 1))],
    ["profit_per_1000", unpriced(money)],
  ];

  function tableRows(r) {
    const relative = r.lift === null || r.lift.relative;
    return r.policies.map((row) =>
      el(
        "tr",
        { "data-policy": row.policy, class: row.policy === "recommended" ? "hl" : "" },
        el("td", { class: "l" }, row.policy),
        ...COLUMNS.map(([f, fmt]) => figure("td", f, row[f], fmt(row[f], { ...row, relative }))),
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
    chart.parentNode.hidden = r.lift === null; // nothing to draw when nothing is priced
    if (r.lift === null) return;
    const W = 720, H = 290, L = 74, R = 18, T = 48, B = 44;
    const c = r.curve;
    let lo = 0, hi = 0;
    for (const v of [...c.profit, ...c.realized_profit]) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
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
    const realized = keep.map((i) => `${X(c.share[i]).toFixed(1)},${Y(c.realized_profit[i]).toFixed(1)}`).join(" ");
    const dashed = { fill: "none", stroke: "#999", "stroke-width": 1.2, "stroke-dasharray": "4 3" };
    chart.append(svg("polyline", { points: realized, ...dashed }));
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
    chart.append(svg("text", turned, `incremental profit on ${nTest} test users`));
    const title =
      `Expected profit (solid) and realized check (dashed) under +${g(r.lift.value * 100)}` +
      (r.lift.relative ? "%" : "pp") + ` lift: offer cost ${g(r.offer_cost)}, upgrade value ${g(r.upgrade_value)}`;
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
    const r = compute(got.cost, got.value, got.budget, got.lift, got.discount);
    $("econ-summary").replaceChildren(...summary(r));
    $("econ-breakeven").replaceChildren(...breakEvenText(r));
    $("econ-table").tBodies[0].replaceChildren(...tableRows(r));
    $("econ-print").textContent =
      `Figures below for offer cost ${String(r.offer_cost)}, upgrade value ${String(r.upgrade_value)}, ` +
      `discount ${String(r.discount)}, ${r.lift === null ? "no lift (unpriced)" : describe(r.lift)}, ` +
      (r.budget === null ? "no budget cap." : `budget ${String(r.budget)}.`);
    draw(r);
  }

  function reset() {
    inputs.cost.value = String(data.offerCost);
    inputs.value.value = String(data.upgradeValue);
    inputs.discount.value = String(data.discount);
    inputs.lift.value = data.lift === null ? "" : data.lift;
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

  window.upgradeEconomics = { compute, parseLift, format: { money, num, pct } };
})();
