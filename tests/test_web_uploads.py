"""What the demo's endpoints read, over raw HTTP against the real server (``python -m web``):
only files that Gradio itself stored, and pasted ``data:`` URLs within the upload limit. Whatever
else a caller names gets one answer that does not depend on whether the path exists."""
from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.heavy

PHOTO = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"
UPLOAD_LOST = "The photo did not arrive; upload it again."
RESTORE_ARGS = ["v1.4", 1.0, 1.0, 1, "embedded", 0.9, "all", "", "box", "lanczos", "png"]
NUMBER_ARGS = ["embedded", 0.9]
VIDEO_ARGS = ["v1.4", 1.0, 1.0, 1, "embedded", 0.9, "all", "", "box", "lanczos", 0.5, 1.0]


def call(server, endpoint: str, image, args: list) -> tuple[str, object]:
    """POST /gradio_api/call/<endpoint>, then read its event stream: ('complete', data) or ('error', message)."""
    posted = requests.post(f"{server.url}gradio_api/call/{endpoint}", json={"data": [image, *args]}, timeout=60)
    assert posted.status_code == 200, posted.text[:500]
    stream = requests.get(f"{server.url}gradio_api/call/{endpoint}/{posted.json()['event_id']}", timeout=300)
    event = data = None
    for line in stream.text.splitlines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event in ("complete", "error"):
            data = json.loads(line[6:])
    if event == "error":
        return event, data["error"] if isinstance(data, dict) else data
    return event, data


def upload(server, path: Path) -> str:
    answer = requests.post(f"{server.url}gradio_api/upload", files={"files": (path.name, path.read_bytes())},
                           timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()[0]


@pytest.fixture(scope="module")
def outside(web_demo, tmp_path_factory) -> dict[str, str]:
    """Paths that are not Gradio uploads: an image and a text file elsewhere on the server, a
    missing file, a link in the upload folder that points out of it, and a '..' way out of it."""
    folder = tmp_path_factory.mktemp("elsewhere")
    text = folder / "notes.txt"
    text.write_text("not for visitors")
    cache = web_demo.workdir / "gradio"
    cache.mkdir(exist_ok=True)
    link_dir = cache / "planted"
    link_dir.mkdir(exist_ok=True)
    link = link_dir / "link.jpg"
    if not link.is_symlink():
        link.symlink_to(PHOTO)
    up = os.path.relpath("/", cache)
    return {"image elsewhere": str(PHOTO), "text file elsewhere": str(text),
            "missing file": str(folder / "missing.jpg"), "link out of the upload folder": str(link),
            "dot-dot out of the upload folder": f"{cache}/{up}{PHOTO}",
            "relative path": os.path.relpath(PHOTO, Path.cwd())}


@pytest.mark.parametrize("endpoint, args", [("restore", RESTORE_ARGS), ("number_faces", NUMBER_ARGS)])
def test_paths_outside_the_upload_folder_all_get_one_answer(web_demo, outside, endpoint, args):
    answers = {what: call(web_demo, endpoint, {"path": path}, args) for what, path in outside.items()}
    for what, (event, message) in answers.items():
        assert (event, message) == ("error", UPLOAD_LOST), f"{what}: {event} {str(message)[:300]}"


def test_the_video_endpoint_reads_only_uploads(web_demo, outside, tmp_path):
    """A clip is a plain file reference (FileData), which Gradio itself checks before the demo sees
    it: a file it did not receive gets its one refusal, whether or not the path exists (the demo's
    own check, web.uploads.uploaded_video, stands behind it). An upload gets through, and is named
    by its own name."""
    for what, path in outside.items():
        event, message = call(web_demo, "restore_video", {"path": path, "meta": {"_type": "gradio.FileData"}},
                              VIDEO_ARGS)
        assert event == "error" and re.fullmatch(r"Cannot move \S+ to the gradio cache dir because it was not "
                                                 r"uploaded by a user\.", message), f"{what}: {message}"
    junk = tmp_path / "holiday.mp4"
    junk.write_bytes(b"this is not a video")
    stored = upload(web_demo, junk)
    event, message = call(web_demo, "restore_video", {"path": stored, "orig_name": "holiday.mp4",
                                                      "meta": {"_type": "gradio.FileData"}}, VIDEO_ARGS)
    assert event == "error" and message.startswith("holiday.mp4: not a readable video"), message
    assert str(web_demo.workdir) not in message


def test_an_oversize_pasted_image_is_refused_before_decoding(web_demo):
    """26 MiB of base64 zeros: decoded, it would be a (non-)image; refused on its length alone."""
    huge = "data:image/png;base64," + "A" * (36 * 2**20)
    for endpoint, args in (("restore", RESTORE_ARGS), ("number_faces", NUMBER_ARGS)):
        event, message = call(web_demo, endpoint, {"url": huge, "path": None}, args)
        assert event == "error" and "larger than this demo's limit of 25 MB" in message, message
        assert "not a readable image" not in message


def test_uploads_and_pasted_images_are_read(web_demo):
    stored = upload(web_demo, PHOTO)
    event, data = call(web_demo, "number_faces", {"path": stored, "meta": {"_type": "gradio.FileData"}},
                       NUMBER_ARGS)
    assert event == "complete" and data[1].startswith("1 face found"), data
    event, data = call(web_demo, "restore", {"path": stored, "orig_name": "astronaut.jpg"}, RESTORE_ARGS)
    assert event == "complete" and "1 face found, 1 restored" in data[3], data
    pasted = "data:image/jpeg;base64," + base64.b64encode(PHOTO.read_bytes()).decode()
    event, data = call(web_demo, "number_faces", {"url": pasted, "path": None}, NUMBER_ARGS)
    assert event == "complete" and data[1].startswith("1 face found"), data


def test_a_non_image_upload_is_named_by_its_own_name(web_demo, tmp_path):
    junk = tmp_path / "holiday.jpg"
    junk.write_bytes(b"this is not a picture")
    stored = upload(web_demo, junk)
    event, message = call(web_demo, "restore", {"path": stored, "orig_name": "holiday.jpg"}, RESTORE_ARGS)
    assert event == "error" and message.startswith("holiday.jpg: not a readable image"), message
    assert str(web_demo.workdir) not in message
