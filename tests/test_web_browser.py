"""The web demo in a real headless Chromium: upload a photo, restore it, see the slider and the face
gallery; a corrupt upload shows a message; a clip restored in the Video tab plays in the page. The
page's screenshots are saved as ``web_demo.png`` and ``web_video.png`` in the test artifacts
(``$GFP_TEST_ARTIFACTS``, else a temporary folder)."""
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


SIZES = {"desktop": (1440, 900), "mobile": (390, 844)}

#: every label the page shows for a component (not the options of a radio)
LABELS_JS = """() => [...document.querySelectorAll('[data-testid="block-label"], [data-testid="block-info"]')]
    .filter(e => e.offsetParent !== null).map(e => e.textContent.trim()).filter(t => t)"""


def page_y(page, selector: str) -> float:
    """Where an element starts on the page (not in the viewport): scrolling does not move it."""
    return page.eval_on_selector(selector, "e => e.getBoundingClientRect().top + window.scrollY")


@pytest.mark.parametrize("size", SIZES)
def test_the_page_works_on_a_desktop_and_a_phone(chromium, web_demo, artifacts, size):
    width, height = SIZES[size]
    page = chromium.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(web_demo.url, wait_until="networkidle", timeout=60_000)

    # the weights in use are seeded random ones: the page says so as soon as it opens
    banner = page.locator("#weights-note")
    banner.wait_for(state="visible", timeout=30_000)
    assert "GFPGAN v1.4 runs on seeded random weights" in banner.inner_text()

    # one label per component, and no face count before anything was restored
    labels = page.evaluate(LABELS_JS)
    assert len(labels) == len(set(labels)), labels
    assert "Faces found" not in labels

    # the Restore button is on the first screen, and stays where it is when Advanced opens
    before = page_y(page, "#restore")
    page.locator("#advanced").get_by_text("Advanced").first.click()
    page.get_by_text("Blending mask").first.wait_for(state="visible")
    after = page_y(page, "#restore")
    assert abs(after - before) < 2, f"Restore moved from {before:.0f} to {after:.0f} px when Advanced opened"
    assert after + 40 < height, f"Restore at {after:.0f} px is below the first screen ({height} px)"

    if size == "mobile":  # a visitor on a phone starts from an example
        page.locator("#examples").get_by_role("button").first.click()
        page.locator("#photo img").first.wait_for(timeout=30_000)
    else:
        upload(page, PHOTO)
    page.locator("#restore").click()
    page.locator("#faces img").first.wait_for(timeout=180_000)
    page.wait_for_function("() => document.querySelectorAll('#before-after img').length >= 2", timeout=60_000)
    page.wait_for_timeout(500)  # let the images finish painting before the screenshot
    page.screenshot(path=str(artifacts / f"web_{size}.png"), full_page=True)

    assert "1 face found, 1 restored" in page.locator("#summary").inner_text()
    assert page.locator("#face-count input").input_value() == "1"
    labels = page.evaluate(LABELS_JS)
    assert len(labels) == len(set(labels)) and "Faces found" in labels, labels
    # results before the examples (on a phone, where everything is one column, too)
    assert page_y(page, "#results") < page_y(page, "#examples")
    # the face gallery: a bounded height, and several pairs to a row where they fit (not one 750 px tall
    # pair per row)
    gallery = page.locator("#faces").bounding_box()
    pair = page.locator("#faces .thumbnail-item").first.bounding_box()
    assert gallery["height"] <= 420 and pair["height"] <= 200, (gallery, pair)
    columns = page.eval_on_selector("#faces .grid-container", "e => getComputedStyle(e).gridTemplateColumns")
    assert len(columns.split()) >= (3 if size == "desktop" else 1), columns
    # the result is on screen after the restore, and no message covers it
    slider = page.locator("#before-after").bounding_box()
    assert slider["y"] < height and slider["y"] + slider["height"] > 0, slider
    assert page.locator(".toast-body").count() == 0
    assert not errors, errors
    page.close()


# --- the Video tab ------------------------------------------------------------------------------------

CLIP_FRAMES, CLIP_FPS = 8, 15

#: every progress text the page shows while the clip is restored (Gradio's progress replaces its
#: text as frames are done: collected as it changes, so no moment has to be caught)
WATCH_PROGRESS_JS = """() => { window.progressSeen = new Set();
    new MutationObserver(() => {
        for (const match of document.body.innerText.matchAll(/(Finding faces in|Restoring) frame \\d+ of \\d+/g)) {
            window.progressSeen.add(match[0]); }
    }).observe(document.body, {subtree: true, childList: true, characterData: true}); }"""

#: resolves once the result's <video> has loaded its metadata: (src, duration, size)
PLAYABLE_JS = """() => new Promise((resolve, reject) => {
    const video = document.querySelector('#video-result video');
    const answer = () => resolve([video.currentSrc || video.src, video.duration, video.videoWidth, video.videoHeight]);
    if (video.readyState >= 1) { answer(); return; }
    video.addEventListener('loadedmetadata', answer, {once: true});
    video.addEventListener('error', () => reject(new Error('the video cannot be played: ' +
                                                           (video.error && video.error.message))), {once: true});
    video.load(); })"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """8 frames (256×256) of a moving real face at 15 fps, H.264 with an AAC tone."""
    from clip_files import write_clip
    from clips import make_clip

    return write_clip(tmp_path_factory.mktemp("clip") / "party.mp4", make_clip("moving", CLIP_FRAMES).frames,
                      fps=CLIP_FPS)


def test_a_clip_is_restored_and_plays_in_the_browser(chromium, web_demo, clip, artifacts):
    page = open_page(chromium, web_demo)
    page.get_by_role("tab", name="Video").click()
    page.locator("#clip input[type=file]").set_input_files(str(clip))
    page.locator("#clip video").first.wait_for(timeout=30_000)  # the upload's preview
    page.evaluate(WATCH_PROGRESS_JS)
    page.locator("#restore-video").click()

    page.locator("#video-result video").wait_for(timeout=180_000)
    src, duration, width, height = page.evaluate(PLAYABLE_JS)
    assert "party_restored.mp4" in src and (width, height) == (256, 256)
    assert abs(duration - CLIP_FRAMES / CLIP_FPS) < 0.1, duration
    link = page.locator("#video-download a").first
    link.wait_for(timeout=30_000)
    assert "party_restored.mp4" in "".join(page.locator("#video-download").inner_text().split())
    assert link.get_attribute("href").endswith("party_restored.mp4") and link.get_attribute("download") is not None
    assert "8 frames, 8 faces restored" in page.locator("#video-summary").inner_text()
    seen = page.evaluate("() => [...window.progressSeen]")
    assert any(text.startswith("Restoring frame") and text.endswith(f"of {CLIP_FRAMES}") for text in seen), seen
    page.screenshot(path=str(artifacts / "web_video.png"), full_page=True)
    assert page.locator(".toast-body").count() == 0
    assert not page.page_errors, page.page_errors
    page.close()
