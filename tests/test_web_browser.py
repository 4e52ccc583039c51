"""The web demo in a real headless Chromium: upload a photo, restore it, see the slider and the face
gallery; a corrupt upload shows a message. The page's screenshot is saved as ``web_demo.png`` in the
test artifacts (``$GFP_TEST_ARTIFACTS``, else a temporary folder)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.heavy

PHOTO = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"


def open_page(chromium, web_demo):
    page = chromium.new_page(viewport={"width": 1400, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(web_demo.url, wait_until="networkidle", timeout=60_000)
    page.page_errors = errors
    return page


def upload(page, path: Path) -> None:
    page.locator("#photo input[type=file]").set_input_files(str(path))
    page.locator("#photo img").first.wait_for(timeout=30_000)  # the upload's preview is shown


def test_restore_in_the_browser(chromium, web_demo, artifacts):
    page = open_page(chromium, web_demo)
    assert "GFPGAN face restoration" in page.title()
    upload(page, PHOTO)
    page.locator("#restore").click()
    page.locator("#faces img").first.wait_for(timeout=180_000)
    page.wait_for_function("() => document.querySelectorAll('#before-after img').length >= 2", timeout=60_000)
    page.wait_for_timeout(500)  # let the images finish painting before the screenshot
    page.screenshot(path=str(artifacts / "web_demo.png"), full_page=True)

    assert page.locator("#face-count input").input_value() == "1"
    assert "1 face found, 1 restored" in page.locator("#summary").inner_text()
    slider_images = page.locator("#before-after img")
    sizes = [slider_images.nth(i).evaluate("img => [img.naturalWidth, img.naturalHeight]") for i in range(2)]
    assert sizes == [[1024, 1024], [1024, 1024]]
    assert page.locator("#faces img").count() >= 1
    assert "astronaut_restored" in page.locator("#download").inner_text()
    # what the page says about the weights that are missing offline
    assert page.get_by_text("embedded RetinaFace").count() >= 1
    assert not page.page_errors, page.page_errors
    page.close()


def test_a_corrupt_upload_shows_a_message(chromium, web_demo, tmp_path):
    broken = tmp_path / "old_photo.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    page = open_page(chromium, web_demo)
    page.locator("#photo input[type=file]").set_input_files(str(broken))
    page.wait_for_timeout(1000)
    page.locator("#restore").click()
    message = page.get_by_text("old_photo.jpg: not a readable image")
    message.first.wait_for(timeout=60_000)
    assert "Traceback" not in page.content()
    page.close()
