"""The model card: a short Markdown summary of a bundle written from its metadata."""

from __future__ import annotations

from .metadata import BundleMetadata


def model_card(m: BundleMetadata) -> str:
    """A short Markdown model card from the bundle's metadata (what, how well, on what, caveats)."""
    cv, test = m.metrics.cv, m.metrics.test
    schema = m.schema
    lines = [f"# Model card: {m.label or m.key or 'upgrade model'}", ""]
    lines += [
        f"- Predicts: probability that a free user upgrades ({schema.target or 'target'} = "
        f"{schema.positive_label or '1'})",
        f"- Model: {m.key or '?'} ({m.family or '?'}, imbalance strategy "
        f"{m.strategy or '?'}{', Platt-calibrated' if m.calibrated else ''})",
        f"- Decision threshold: {m.threshold} ({m.threshold_objective or 'chosen in training'})",
        f"- Created: {m.created or '?'}; libraries: " + ", ".join(f"{k} {v}" for k, v in m.versions.items()),
    ]
    t = m.training
    if t is not None:
        share = f"{t.positive_share:.1%}" if t.positive_share is not None else "?"
        lines.append(
            f"- Training data: {t.rows if t.rows is not None else '?'} rows of {t.source or '?'} "
            f"(sha256 {(t.fingerprint or '')[:12]}...), positive share {share}"
        )
    if schema.columns:
        lines.append("- Inputs: " + ", ".join(f"{c.name} ({c.kind})" for c in schema.columns))
    if m.excluded:
        lines.append(f"- Left out: {', '.join(m.excluded)}")
    lines += ["", "## Performance", "", "| metric | cross-validated | held-out test |", "| --- | --- | --- |"]
    for k in ("roc_auc", "pr_auc", "f1", "precision", "recall", "brier"):
        if f"{k}_mean" in cv or k in test:
            cvs = f"{cv[f'{k}_mean']:.3f} ± {cv.get(f'{k}_sd', 0):.3f}" if f"{k}_mean" in cv else ""
            ts = f"{test[k]:.3f}" if k in test else ""
            lines.append(f"| {k} | {cvs} | {ts} |")
    lines += [
        "",
        "## Caveats",
        "",
        (
            f"- Trained on event tables: features use only events dated before the cutoff, the label is a "
            f"first upgrade within {m.events.horizon} days of it, and the test metrics come from the latest "
            "period of the data, after the training rows' labels had closed. Rates move with campaigns: "
            "check `drift` before trusting counts."
            if m.events is not None
            else "- Engagement columns are measured up to the first purchase for buyers, so totals such as "
            "days_on_platform tie to the label by construction; scores on users still in their free period "
            "are lower than the test metrics suggest. Compare with the no-leak bundle when one exists."
        ),
        "- Country codes never seen in training are scored as rare codes; `drift` reports them.",
        "- Scores rank users; treat them as probabilities only if the model is calibrated.",
    ]
    return "\n".join(lines) + "\n"
