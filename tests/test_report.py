"""The HTML report: self-contained, complete, traceable, atomic, and clean in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from upgrade_predictor.errors import InputError
from upgrade_predictor.reporting import report

sys.path.insert(0, str(Path(__file__).parent))
from test_insights import shared_run  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
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
    assert "<script" not in html and "<link" not in html
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


def test_build_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(InputError, match="not a complete run folder"):
        report.build_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


@pytest.mark.slow
def test_report_opens_in_headless_chromium_without_errors(built, tmp_path):
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if os.environ.get("CI"):
        from playwright.sync_api import sync_playwright
    else:
        sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    path, _ = built
    errors, failed = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
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
        browser.close()
    assert errors == [] and failed == []
    assert broken == [] and n_images >= 12
    assert widest <= 1280  # no figure wider than a laptop screen
    assert shot.stat().st_size > 50_000
