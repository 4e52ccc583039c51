"""A second, short-lived demo server (``python -m web --keep-results 2 --max-faces 1``) for what the
shared one cannot show: result files removed on a timer with no request coming, everything removed
when the server is terminated, and the per-photo face limit set on the command line."""
from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.heavy

PHOTO = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"


@pytest.fixture(scope="module")
def short_lived(web_demo, tmp_path_factory):
    from web_server import WebServer

    server = WebServer(tmp_path_factory.mktemp("web-short"), "--keep-results", "2", "--max-faces", "1")
    server.hf_cache = web_demo.hf_cache  # the same random GFPGANv1.4
    server.start()
    yield server
    server.stop()


def results_folder(server) -> Path:
    match = re.search(r"results kept in (\S+) for 2 s", server.log())
    assert match, server.log()[-2000:]
    return Path(match.group(1))


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


def test_results_expire_and_the_face_limit_applies(short_lived, tmp_path):
    from gradio_client import Client, handle_file

    row = Image.new("RGB", (1024, 512), (128, 128, 128))
    row.paste(Image.open(PHOTO).convert("RGB"), (0, 0))
    row.paste(Image.open(PHOTO).convert("RGB").resize((384, 384)), (600, 64))
    path = tmp_path / "two.png"
    row.save(path)
    client = Client(short_lived.url, verbose=False)
    _, gallery, count, summary, result_file = client.predict(
        handle_file(str(path)), "v1.4", 1.0, 1.0, 1, "embedded", 0.9, "all", "", "box", "lanczos", "png",
        api_name="/restore")
    assert count == 2 and len(gallery) == 1 and gallery[0]["caption"].startswith("Face #0")
    assert "2 faces found; the 1 largest were restored (this demo's limit)" in summary

    folder = results_folder(short_lived)
    kept = list(folder.iterdir())
    assert len(kept) == 1, kept  # the result, on the server
    assert wait_until(lambda: not kept[0].exists(), 15), "a result outlived --keep-results with no request coming"


def test_terminating_the_server_removes_its_results(short_lived):
    from gradio_client import Client, handle_file

    client = Client(short_lived.url, verbose=False)
    client.predict(handle_file(str(PHOTO)), "v1.4", 1.0, 1.0, 1, "embedded", 0.9, "all", "", "box", "lanczos",
                   "png", api_name="/restore")
    folder = results_folder(short_lived)
    assert any(folder.iterdir())
    short_lived.proc.send_signal(signal.SIGTERM)  # how Spaces, containers and systemd stop a server
    assert short_lived.proc.wait(60) == 0, short_lived.log()[-2000:]
    assert not folder.exists(), "the results folder outlived the server"
