"""End to end in a real browser: headless Chromium (Debian's package) opens the Space, uploads a photo, waits for
the results and saves screenshots. Set MIRNET_SCREENSHOT_DIR to keep them (default: pytest's tmp_path)."""

import os
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("gradio", reason="the Space needs gradio: pip install -e '.[space]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")

from space_helpers import LOL, load_space_app, served  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium (Playwright's own browser download does not work here)",
    ),
]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("MIRNET_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_in_page(browser, url, shot, image=LOL / "low" / "179.png", reference=LOL / "high" / "179.png", brightness=None):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#input-image input[type=file]").set_input_files(str(image))
        if reference:
            page.locator("#reference-image input[type=file]").set_input_files(str(reference))
        page.locator("#input-image img").first.wait_for(state="visible", timeout=20_000)  # the upload is shown
        if brightness is not None:  # typed into the slider's number box, as a user would
            box = page.locator("#brightness input[type=number]")
            box.fill(str(brightness))
            box.press("Enter")
        page.locator("#enhance-button").click()
        if reference:
            page.locator("#metrics table").wait_for(state="visible", timeout=30_000)  # the results are in
        page.locator("#autocontrast-slider img").first.wait_for(state="visible", timeout=30_000)
        page.wait_for_function("document.querySelector('#status').innerText.includes('.')", timeout=30_000)
        page.wait_for_timeout(500)  # let the images finish painting
        page.screenshot(path=str(shot), full_page=True)
        return page.locator("#status").inner_text(), page.locator("#notice").inner_text(), page
    except Exception:
        page.screenshot(path=str(shot.with_name(shot.stem + "-failed.png")), full_page=True)
        page.close()
        raise


def test_upload_enhance_and_screenshot(browser, tiny_model_dir, shots):
    with served({"mirnet-tiny": str(tiny_model_dir)}) as (_, demo):
        shot = shots / "space-tiny-model.png"
        status, _, page = run_in_page(browser, demo.local_url, shot)
        try:
            assert "mirnet-tiny" in status and "600x400" in status
            assert page.locator("#mirnet-slider img").count() >= 1
            assert "PSNR" in page.locator("#metrics").inner_text()
        finally:
            page.close()
    assert shot.stat().st_size > 10_000


def test_without_checkpoint_the_page_says_so(browser, shots):
    with served({}) as (_, demo):
        shot = shots / "space-no-checkpoint.png"
        status, notice, page = run_in_page(browser, demo.local_url, shot)
        try:
            assert "No trained MIRNet checkpoint was found" in notice
            assert "only the autocontrast baseline" in status
            assert page.locator("#mirnet-slider img").count() == 0  # nothing presented as a MIRNet result
        finally:
            page.close()
    assert shot.stat().st_size > 10_000


def test_the_shipped_model_in_the_browser(browser, shots):
    """The bundled space/checkpoints/mirnet-lol, as `python space/app.py` serves it by default (this test's screenshot,
    with MIRNET_SCREENSHOT_DIR set, is space/screenshot.png)."""
    shipped = Path(__file__).resolve().parents[1] / "space" / "checkpoints" / "mirnet-lol"
    image, reference = load_space_app().example_rows()[0]  # the first example: the photo a visitor sees first
    with served({"LoL": str(shipped)}) as (_, demo):
        shot = shots / "space-mirnet-lol.png"
        status, notice, page = run_in_page(browser, demo.local_url, shot, image, reference)
        try:
            assert "LoL" in status and "600x400" in status
            assert "No trained MIRNet checkpoint" not in notice
            assert page.locator("#mirnet-slider img").count() >= 1
            assert "MIRNet" in page.locator("#metrics").inner_text()
        finally:
            page.close()
    assert shot.stat().st_size > 10_000


def test_brightness_slider_and_several_photos(browser, tiny_model_dir, shots):
    """The brightness slider reaches the model (the status names it), and the "Several photos" tab returns a gallery
    with one result per photo and a zip to download."""
    with served({"mirnet-tiny": str(tiny_model_dir)}) as (_, demo):
        status, _, page = run_in_page(browser, demo.local_url, shots / "space-brightness.png", reference=None, brightness=1)
        try:
            assert "brightness +1 stops" in status
            page.get_by_role("tab", name="Several photos").click()
            page.locator("#photos input[type=file]").set_input_files([str(LOL / "low" / "1.png"), str(LOL / "low" / "22.png")])
            page.locator("#enhance-all-button").click()
            page.locator("#results-zip a").first.wait_for(state="visible", timeout=60_000)
            assert "enhanced 2 of 2 photo(s)" in page.locator("#many-status").inner_text()
            assert page.locator("#results-gallery img").count() >= 2
            assert "mirnet_enhanced.zip" in page.locator("#results-zip").inner_text().replace("\n", "")
            page.screenshot(path=str(shots / "space-several-photos.png"), full_page=True)
        finally:
            page.close()


def test_the_exposure_slider_renders_when_released_without_another_click(browser, tmp_path, shots):
    """An exposure-conditioned checkpoint: "auto" shows the model's guess on the slider; dragging the slider and letting
    go (here: typing into its number box and leaving it) renders that exposure (the status says "set") with no click
    on Enhance."""
    from modeling_mirnet import MIRNetModel
    from modeling_mirnet.hub import save_for_hub
    from helpers import tiny_config

    torch.manual_seed(0)
    conditioned = tmp_path / "conditioned"
    save_for_hub(MIRNetModel(tiny_config(exposure_conditioning=True)).eval(), conditioned)
    with served({"exposure": str(conditioned)}) as (_, demo):
        status, _, page = run_in_page(browser, demo.local_url, shots / "space-exposure.png", reference=None)
        try:
            assert "(predicted)" in status
            box = page.locator("#exposure input[type=number]")  # typed, then left: the slider is released
            box.fill("2")
            box.press("Tab")
            page.wait_for_function("document.querySelector('#status').innerText.includes('(set)')", timeout=30_000)
            assert "exposure +2.00 stops (set)" in page.locator("#status").inner_text()
            assert not page.locator("#auto-exposure input").is_checked()
        finally:
            page.close()
