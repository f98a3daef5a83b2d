"""The HTML report: self-contained, complete, traceable, atomic, and clean in a real browser."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from upgrade_predictor import config
from upgrade_predictor.errors import InputError
from upgrade_predictor.reporting import report
from upgrade_predictor.training.runs import load_run

sys.path.insert(0, str(Path(__file__).parent))
from conftest import headless_chromium  # noqa: E402
from test_insights import fabricate_run, shared_run  # noqa: E402

SECTIONS = [
    "data",
    "comparison",
    "imbalance",
    "chosen",
    "drivers",
    "segments",
    "targeting",
    "caveats",
    "recommendations",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    run_dir = shared_run(tmp_path_factory)
    path = report.build_report(run_dir)
    return path, path.read_text()


@pytest.mark.slow
def test_report_is_self_contained_and_has_every_section(built):
    path, html = built
    assert path.name == "report.html" and path.stat().st_size < 5_000_000
    # Nothing is fetched from the network: every image is embedded, no script or stylesheet link.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    # Scripts are inline (the economics panel's), never loaded from anywhere; no stylesheet link.
    assert not re.search(r"<script[^>]*\bsrc=", html) and "<link" not in html
    imgs = re.findall(r'<img src="([^"]+)"', html)
    assert len(imgs) >= 12 and all(s.startswith("data:image/") for s in imgs)
    for s in SECTIONS:
        assert f'id="{s}"' in html and f'href="#{s}"' in html
    assert "@media print" in html
    assert not list(path.parent.glob(".report.html.*"))  # no temp file left behind


def _recommendations(html: str) -> tuple[str, str]:
    start = html.index('id="recommendations"')
    return html[:start], html[start : html.index("</ol>", start)]


@pytest.mark.slow
def test_every_number_in_the_recommendations_appears_in_the_report_body(built):
    _, html = built
    body, recs = _recommendations(html)
    body = body.replace("&amp;", "&")
    items = re.findall(r"<li>(.*?)<a class=\"src\"", recs, flags=re.S)
    assert 3 <= len(items) <= 6
    for text in items:
        numbers = re.findall(r"\d[\d,]*\.?\d*%?", text.replace("&amp;", "&"))
        assert numbers, text
        for n in numbers:
            assert n.rstrip(".,") in body, f"{n!r} from recommendation {text!r} is not shown above it"


@pytest.mark.slow
def test_report_command_rebuilds_and_bad_folder_exits_2(tmp_path, tmp_path_factory):
    run_dir = tmp_path / "run"
    shutil.copytree(shared_run(tmp_path_factory), run_dir)
    (run_dir / "report.html").unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "upgrade_predictor.cli", "report"]
    ok = subprocess.run(cmd + [str(run_dir)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (run_dir / "report.html").exists()

    (run_dir / "predictions.parquet").unlink()
    (run_dir / "report.html").unlink()
    bad = subprocess.run(cmd + [str(run_dir)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "predictions.parquet" in bad.stderr and "Traceback" not in bad.stderr
    assert not (run_dir / "report.html").exists()


@pytest.fixture(scope="module")
def forest_run(tmp_path_factory) -> Path:
    """A run whose chosen model is a random forest of fully grown trees, on a synthetic table of 6,000 rows."""
    from conftest import synthetic_frame

    folder = tmp_path_factory.mktemp("forest_run")
    synthetic_frame(6000, seed=3).to_csv(folder / "table.csv", index=False)
    return fabricate_run(folder / "run", folder / "table.csv", (("forest", "none"),), chosen_family="forest")


def test_the_report_states_its_samples_and_its_time(forest_run, monkeypatch):
    monkeypatch.setattr(config, "REPORT_PERMUTATION_ROWS", 300)
    monkeypatch.setattr(config, "REPORT_PDP_ROWS", 120)
    out = io.StringIO()
    started = time.perf_counter()
    path = report.build_report(forest_run, Console(file=out, width=200))
    took = time.perf_counter() - started
    html = path.read_text().replace("&#39;", "'")
    run = load_run(forest_run)
    n_test = len(run.rows("test"))
    assert n_test == 1200
    # Permutation importance and partial dependence: the configured sizes, stated beside the results.
    assert f"a stratified sample of 300 of the {n_test:,} test rows" in html
    assert f"over a stratified sample of 120 of the {n_test:,} test rows" in html
    # SHAP of the deep forest: exact TreeSHAP on the sample its nodes allow, never above the configured size.
    shap_rows = int(
        re.search(
            r"Path-dependent TreeSHAP \(shap's TreeExplainer, exact\) on a stratified sample of ([\d,]+) of",
            html,
        )[1]
    )
    assert config.REPORT_SHAP_MIN_ROWS <= shap_rows <= config.REPORT_SHAP_ROWS and shap_rows < n_test
    assert f"Each dot is one of these {shap_rows:,} test users" in html
    assert "DeLong 95% intervals" in html
    # The step prints its progress and its own elapsed time.
    said = out.getvalue()
    assert "report: done" in said
    seconds = float(re.search(r"report written in (\d+\.\d) s: ", said)[1])
    assert 0 < seconds <= took + 0.1


def test_build_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(InputError, match="not a complete run folder"):
        report.build_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


@pytest.mark.slow
def test_report_opens_in_headless_chromium_without_errors(built, tmp_path):
    path, _ = built
    errors, failed = [], []
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: failed.append(r.url[:80]))
        page.goto(path.as_uri(), wait_until="load")
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)"
        )
        n_images = page.evaluate("document.images.length")
        widest = page.evaluate(
            "Math.max(...Array.from(document.images).map(i => i.getBoundingClientRect().right))"
        )
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
    assert errors == [] and failed == []
    assert broken == [] and n_images >= 12
    assert widest <= 1280  # no figure wider than a laptop screen
    assert shot.stat().st_size > 50_000
