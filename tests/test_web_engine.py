"""The demo's restore function without a server (web/engine.py), on a small random GFPGAN: what comes
back for photos in odd modes, and the limits that protect the server."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="the web demo needs requirements-web.txt")

from gfp_core.errors import GFPError, InvalidImageError  # noqa: E402
from web.engine import InvalidOptionError, RestoreEngine, RestoreOptions, TimeLimitError  # noqa: E402

PHOTO = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"
FAST = dict(upscale=1, mask="box", detector="embedded")


@pytest.fixture
def engine(isolated, tiny_checkpoint, monkeypatch, tmp_path):
    """An engine whose 'v1.4' is the small random model, found in a model folder."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(tiny_checkpoint, folder / "GFPGANv1.4.pth")
    monkeypatch.setenv("GFP_MODEL_DIRS", str(folder))
    monkeypatch.setenv("GFP_ALLOW_UNVERIFIED", "1")
    return RestoreEngine(device="cpu", output_dir=tmp_path / "out", max_pixels=2_000_000,
                         max_output_pixels=4_000_000)


@pytest.mark.parametrize("mode, suffix, fmt", [("RGBA", ".png", "png"), ("L", ".png", "png"),
                                               ("I;16", ".png", "png"), ("CMYK", ".jpg", "jpeg"),
                                               ("RGB", ".jpg", "webp"), ("LA", ".png", "png")])
def test_the_download_keeps_the_photo_s_mode(engine, tmp_path, mode, suffix, fmt):
    rgb = Image.open(PHOTO).convert("RGB")
    if mode in ("RGBA", "LA"):
        image = rgb.convert(mode[:-1])
        image.putalpha(Image.linear_gradient("L").resize(rgb.size))
    elif mode == "I;16":
        image = Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257)
    else:
        image = rgb.convert(mode)
    path = tmp_path / f"photo{suffix}"
    image.save(path)
    outcome = engine.restore(path, RestoreOptions(**FAST, output_format=fmt))
    assert outcome.num_restored == 1 and outcome.file.suffix == {"jpeg": ".jpg"}.get(fmt, f".{fmt}")
    saved = np.asarray(Image.open(outcome.file)) if mode != "I;16" else None
    expected_shape = {"RGBA": (512, 512, 4), "L": (512, 512), "CMYK": (512, 512, 3), "RGB": (512, 512, 3),
                      "LA": (512, 512, 2)}
    if mode == "I;16":
        import cv2

        deep = cv2.imread(str(outcome.file), cv2.IMREAD_UNCHANGED)
        assert deep.dtype == np.uint16 and deep.shape == (512, 512)
    else:
        assert saved.shape == expected_shape[mode]
    if mode in ("RGBA", "LA"):  # the alpha channel comes back untouched
        assert np.array_equal(saved[..., -1], np.asarray(image)[..., -1])
    assert outcome.before.shape == outcome.after.shape == (512, 512, 3)  # the page always shows RGB


def test_limits_are_explained(engine, tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (2000, 1200)).save(big)
    with pytest.raises(InvalidImageError, match="2000x1200 is 2 megapixels, over the limit of 2"):
        engine.restore(big, RestoreOptions(**FAST))
    with pytest.raises(InvalidImageError, match="would be 2048x2048 pixels.*choose a smaller upscale"):
        engine.restore(PHOTO, RestoreOptions(**{**FAST, "upscale": 4}))
    for bad, message in [({"fidelity": 1.5}, "Fidelity must be between 0 and 1"),
                         ({"upscale": 2.5}, "Upscale must be a whole number from 1 to 4, got 2.5"),
                         ({"upscale": 3.5}, "Upscale must be a whole number from 1 to 4, got 3.5"),
                         ({"output_format": "gif"}, "Download format must be one of png, jpeg, webp")]:
        with pytest.raises(InvalidOptionError, match=message):
            engine.restore(PHOTO, RestoreOptions(**{**FAST, **bad}))


def test_models_are_loaded_once_and_results_expire(engine, tmp_path):
    first = engine.restore(PHOTO, RestoreOptions(**FAST))
    second = engine.restore(PHOTO, RestoreOptions(**{**FAST, "fidelity": 0.0}))
    assert engine.restorer_model("v1.4") is engine.restorer_model("v1.4")
    assert first.file.is_file() and second.file != first.file
    assert not np.array_equal(first.after, second.after)  # fidelity is applied per request
    engine.keep_s = -1  # everything is old now: the next save clears earlier results
    third = engine.restore(PHOTO, RestoreOptions(**FAST))
    assert not first.file.exists() and not second.file.exists() and third.file.is_file()
    assert engine.peak_running == 1 and engine.running == 0


def faces_in_a_row(tmp_path: Path, sizes: list[int]) -> Path:
    """The astronaut photo at each size in ``sizes``, side by side: one face each, of known sizes."""
    photos = [Image.open(PHOTO).convert("RGB").resize((s, s)) for s in sizes]
    row = Image.new("RGB", (sum(sizes), max(sizes)), (128, 128, 128))
    x = 0
    for photo in photos:
        row.paste(photo, (x, 0))
        x += photo.width
    path = tmp_path / "row.png"
    row.save(path)
    return path


def test_only_the_largest_faces_are_restored_beyond_the_limit(engine, tmp_path):
    engine.max_faces = 2
    row = faces_in_a_row(tmp_path, [256, 512, 384])
    outcome = engine.restore(row, RestoreOptions(**FAST))
    assert outcome.num_detected == 3 and outcome.num_restored == 2
    assert "3 faces found; the 2 largest were restored (this demo's limit)" in outcome.notes
    # the two largest (reading-order numbers 1 and 2) were restored; the smallest (#0) is untouched
    assert [caption.split(":")[0] for _, caption in outcome.face_pairs] == ["Face #1", "Face #2"]
    result = np.asarray(Image.open(outcome.file).convert("RGB")).astype(int)
    source = np.asarray(Image.open(row).convert("RGB")).astype(int)
    assert np.array_equal(result[:, :256], source[:, :256])
    assert np.abs(result[:, 256:768] - source[:, 256:768]).mean() > 1


def test_a_request_over_the_time_limit_is_stopped(engine, tmp_path):
    engine.time_limit = 1e-9  # over before the first stage ends
    with pytest.raises(TimeLimitError, match=r"more than this demo's limit of 1e-09 s \(stopped while "):
        engine.restore(PHOTO, RestoreOptions(**FAST))
    assert not any(engine.output_dir.iterdir())  # nothing was saved
    assert engine.running == 0
    assert issubclass(TimeLimitError, GFPError)


def test_a_time_limit_stops_the_face_restoration_between_faces(engine, tmp_path, monkeypatch):
    """The budget is also checked while faces are restored: the restorer stops at its next report."""
    import web.engine as engine_module

    row = faces_in_a_row(tmp_path, [384, 384, 384])
    calls: list[str] = []
    real_check = engine_module.Deadline.check

    def check(self, stage: str) -> None:
        calls.append(stage)
        if stage.startswith("restoring"):  # the clock runs out once the faces are being restored
            self.end = 0
        real_check(self, stage)

    monkeypatch.setattr(engine_module.Deadline, "check", check)
    with pytest.raises(TimeLimitError, match="stopped while restoring 3 faces"):
        engine.restore(row, RestoreOptions(**FAST))
    assert calls[:2] == ["loading the models", "finding faces"] and "blending the faces in" not in calls
    assert not any(engine.output_dir.iterdir())


def test_old_results_go_without_another_request(engine, tmp_path):
    """A background thread removes results older than keep_s; close() removes all of them."""
    import time

    engine = RestoreEngine(device="cpu", output_dir=tmp_path / "results", keep_s=1.0)
    outcome = engine.restore(PHOTO, RestoreOptions(**FAST))
    folder = outcome.file.parent
    assert folder.is_dir()
    deadline = time.monotonic() + 30
    while folder.exists() and time.monotonic() < deadline:
        engine._closed.wait(0.1)
    assert not folder.exists(), "the result folder outlived keep_s with no request coming"
    engine.close()
    assert not engine.output_dir.exists()
    engine._sweeper.join(5)
    assert not engine._sweeper.is_alive()


def test_the_accelerated_call_takes_only_picklable_arguments(engine, monkeypatch, tmp_path):
    """ZeroGPU pickles the decorated function's arguments and result: capture the exact call the page
    makes through a real Gradio server in this process, and pickle what it was given and gave back."""
    import pickle

    from gradio_client import Client, handle_file

    import web.app as app

    calls: list[tuple] = []

    def recording(fn):
        def wrapper(*args, **kwargs):
            result = fn(*args, **kwargs)
            calls.append((args, kwargs, result))
            return result
        return wrapper

    monkeypatch.setattr(app, "on_accelerator", recording)
    demo = app.build_demo(engine)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        result = client.predict(handle_file(str(PHOTO)), "v1.4", 0.5, 1.0, 1, "embedded", 0.9, "all", "", "box",
                                "lanczos", "png", api_name="/restore")
    finally:
        demo.close()
    assert result[2] == 1
    (args, kwargs, outcome), = calls
    assert isinstance(args[0], str) and isinstance(args[1], RestoreOptions) and not kwargs
    for value in (*args, outcome):
        pickle.loads(pickle.dumps(value))
    assert outcome.num_restored == 1


def test_unexpected_failures_keep_their_traceback_in_the_log_only(caplog):
    import logging

    from web.messages import FAILED, refuse

    try:
        raise RuntimeError("cannot map /srv/models/secret.bin")
    except RuntimeError as exc:
        with caplog.at_level(logging.ERROR, logger="web"):
            error = refuse("restore", exc, None, "photo.jpg")
    assert str(error.message) == f"{FAILED} (RuntimeError)"
    (record,) = [r for r in caplog.records if r.name == "web"]
    assert record.exc_info and "secret.bin" in caplog.text and "Traceback" in caplog.text


def test_captions_carry_the_numbers_of_the_faces_found_preview(engine, tmp_path):
    row = faces_in_a_row(tmp_path, [256, 512, 384])
    _, count = engine.detect(row, detector="embedded")
    assert count == 3
    outcome = engine.restore(row, RestoreOptions(**FAST, faces="indices", indices="2, 0"))
    assert outcome.num_detected == 3 and outcome.num_restored == 2
    assert [caption.split(":")[0] for _, caption in outcome.face_pairs] == ["Face #0", "Face #2"]


# --- clips ------------------------------------------------------------------------------------------

FPS = 15


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory) -> Path:
    """8 frames (256×256) of a moving real face at 15 fps, H.264 with an AAC tone."""
    from clip_files import write_clip
    from clips import make_clip

    return write_clip(tmp_path_factory.mktemp("clip") / "holiday.mp4", make_clip("moving", 8).frames, fps=FPS)


def test_a_clip_comes_back_with_its_frames_rate_and_sound(engine, clip_file, monkeypatch):
    from gfp_core import video
    from gfp_core.video import probe_video
    from web.engine import VideoOptions

    built = []
    real = video.restore_video

    def recording(face_engine, *args, **kwargs):
        built.append((face_engine.options, kwargs))
        return real(face_engine, *args, **kwargs)

    monkeypatch.setattr(video, "restore_video", recording)
    reports: list[tuple[float, str]] = []
    outcome = engine.restore_video(clip_file, VideoOptions(detector="embedded", mask="box"),
                                   progress=lambda fraction, text: reports.append((fraction, text)))

    # the file: MP4 beside the photo results, every frame at the clip's rate, the tone copied
    info = probe_video(outcome.file)
    assert outcome.file.suffix == ".mp4" and outcome.file.is_relative_to(engine.output_dir)
    assert outcome.file.name == "holiday_restored.mp4"
    assert (info.codec, info.frame_count, info.fps, info.has_audio, info.audio_codecs) == ("h264", 8, FPS, True,
                                                                                           ("aac",))
    assert (outcome.frames, outcome.faces, outcome.frames_without_faces, outcome.audio) == (8, 8, 0, "copy")
    assert outcome.size == (256, 256) and outcome.fps == FPS
    assert outcome.summary.startswith("8 frames, 8 faces restored (")
    assert [p.name for p in outcome.file.parent.iterdir()] == [outcome.file.name]  # no work folder left
    # the engine: the photo path's limits, the tab's smoothing, the clip's own rate, never resumed
    (options, kwargs), = built
    assert (options.smoothing, options.steady, options.fps, options.face_limit, options.upscale) == \
        (0.5, 1.0, FPS, engine.max_faces, 1)
    assert options.max_output_pixels == engine.max_output_pixels and kwargs["resume"] is False
    # progress in frames, rising to the end
    texts = [text for _, text in reports]
    assert "Finding faces in frame 1 of 8" in texts and "Restoring frame 1 of 8" in texts
    assert texts[-1] == "Restoring frame 8 of 8"
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] < 1
    assert engine.running == 0 and engine.peak_running == 1


@pytest.mark.parametrize("limit, value, message", [
    ("file_bytes", 2000, r"holiday\.mp4 is 0\.0\d+ MB, over this demo's limit of 0\.0019 MB per file"),
    ("seconds", 0.5, r"holiday\.mp4 is 0\.5 s long, over this demo's limit of 0\.5 s; trim it"),
    ("frames", 7, r"holiday\.mp4 has 8 frames \(15 per second\), over this demo's limit of 7; "),
    ("pixels", 256 * 255, r"holiday\.mp4 is 256x256 per frame, over this demo's limit of 65,280 pixels per frame"),
])
def test_a_clip_over_a_limit_is_refused_before_decoding(engine, clip_file, monkeypatch, limit, value, message):
    from dataclasses import replace

    from gfp_core import video
    from web.engine import VideoOptions
    from web.video_limits import VideoLimitError

    def never(*args, **kwargs):
        raise AssertionError("a clip over a limit was decoded")

    monkeypatch.setattr(video, "restore_video", never)
    engine.video_limits = replace(engine.video_limits, **{limit: value})  # 8 frames at 15 fps: 0.53 s
    with pytest.raises(VideoLimitError, match=message) as caught:
        engine.restore_video(clip_file, VideoOptions(detector="embedded", mask="box"))
    assert caught.value.setting == {"file_bytes": "max_file_size"}.get(limit, f"max_video_{limit}")
    assert not any(engine.output_dir.iterdir()) and engine.running == 0


def test_unreadable_clips_and_results_too_large_are_explained(engine, clip_file, tmp_path):
    from gfp_core.errors import ImageTooLargeError, InvalidVideoError
    from web.engine import VideoOptions

    junk = tmp_path / "party.mp4"
    junk.write_bytes(b"this is not a video")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip_file.read_bytes()[:3000])
    fast = VideoOptions(detector="embedded", mask="box")
    for bad, expected in [(junk, "party.mp4: not a readable video"), (cut, "cut.mp4: not a readable video"),
                          (PHOTO, "astronaut.jpg: not a supported video container")]:
        with pytest.raises(InvalidVideoError, match=expected) as caught:
            engine.restore_video(bad, fast)
        assert isinstance(caught.value, InvalidImageError)
    engine.max_output_pixels = 256 * 256 * 3
    with pytest.raises(ImageTooLargeError, match="the result would be 512x512"):
        engine.restore_video(clip_file, VideoOptions(detector="embedded", mask="box", upscale=2))
    with pytest.raises(InvalidOptionError, match="Smoothing must be between 0 and 1, got 2"):
        engine.restore_video(clip_file, VideoOptions(detector="embedded", smoothing=2))
    assert not any(engine.output_dir.iterdir()) and engine.running == 0


def test_a_clip_over_the_time_limit_is_stopped_and_leaves_nothing(engine, clip_file, monkeypatch):
    import web.engine as engine_module
    from web.engine import VideoOptions

    real_check = engine_module.Deadline.check
    stages: list[str] = []

    def check(self, stage: str) -> None:
        stages.append(stage)
        if stage == "restoring frame 1 of 8":  # the clock runs out once frames are being restored
            self.end = 0
        real_check(self, stage)

    monkeypatch.setattr(engine_module.Deadline, "check", check)
    with pytest.raises(TimeLimitError, match=r"this clip needed more than this demo's limit of 300 s \(stopped while "
                                             r"restoring frame 1 of 8\); try a shorter clip"):
        engine.restore_video(clip_file, VideoOptions(detector="embedded", mask="box"))
    assert "finding faces in frame 8 of 8" in stages
    assert not any(engine.output_dir.iterdir()) and engine.running == 0


def test_video_options_outcomes_and_refusals_pickle(engine, clip_file):
    """ZeroGPU pickles the video job's arguments, result and errors."""
    import pickle

    from web.engine import VideoOptions
    from web.video_limits import VideoLimitError

    options = VideoOptions(detector="embedded", mask="box", smoothing=0.0)
    assert pickle.loads(pickle.dumps(options)) == options
    outcome = engine.restore_video(clip_file, options)
    copy = pickle.loads(pickle.dumps(outcome))
    assert copy.file == outcome.file and copy.summary == outcome.summary
    error = pickle.loads(pickle.dumps(VideoLimitError("clip.mp4 is too long", "max_video_seconds")))
    assert (str(error), error.setting) == ("clip.mp4 is too long", "max_video_seconds")


def test_video_limits_come_from_flags_and_the_environment(monkeypatch, capsys):
    from web.settings import parse_settings

    defaults = parse_settings([])
    assert (defaults.max_video_seconds, defaults.max_video_frames, defaults.max_video_pixels) == (20, 600, 1920 * 1080)
    monkeypatch.setenv("GFP_WEB_MAX_VIDEO_SECONDS", "7.5")
    monkeypatch.setenv("GFP_WEB_MAX_VIDEO_FRAMES", "200")
    settings = parse_settings(["--max-video-pixels", "921600"])
    assert (settings.max_video_seconds, settings.max_video_frames, settings.max_video_pixels) == (7.5, 200, 921600)
    for argv, message in [(["--max-video-seconds", "0"], "--max-video-seconds must be a positive number of seconds"),
                          (["--max-video-frames", "-3"], "--max-video-frames must be a positive number of frames")]:
        with pytest.raises(SystemExit):
            parse_settings(argv)
        assert message in capsys.readouterr().err


def test_only_uploads_are_taken_as_clips(tmp_path, clip_file):
    """The demo's own check behind Gradio's: a clip reference is read only inside the upload folder
    (links and '..' resolved), never pasted, with one answer whether or not the path exists."""
    from web.uploads import VIDEO_LOST, UploadError, uploaded_video

    cache = tmp_path / "gradio"
    (cache / "abc").mkdir(parents=True)
    stored = cache / "abc" / "party.mp4"
    shutil.copy(clip_file, stored)
    (cache / "abc" / "link.mp4").symlink_to(clip_file)
    assert uploaded_video({"path": str(stored), "orig_name": "Our party.mp4"}, cache) == (stored, "Our party.mp4")
    assert uploaded_video(str(stored), cache) == (stored, "party.mp4")
    way_out = f"{cache}/abc/../../../{clip_file.relative_to(tmp_path.parent)}"  # the real clip, through '..'
    assert Path(way_out).is_file()
    refused = [{"path": str(clip_file)}, {"path": str(tmp_path / "missing.mp4")},
               {"path": str(cache / "abc" / "link.mp4")}, {"path": way_out},
               {"url": "data:video/mp4;base64,AAAAGGZ0eXBtcDQy", "path": None}, {"path": str(cache / "abc")}, 42]
    for payload in refused:
        with pytest.raises(UploadError) as caught:
            uploaded_video(payload, cache)
        assert str(caught.value) == VIDEO_LOST, payload
    with pytest.raises(UploadError, match="Add a video first"):
        uploaded_video(None, cache)


def test_the_backend_is_a_server_setting_and_the_summary_says_which_ran(engine, monkeypatch, capsys, tmp_path):
    """--backend / GFP_BACKEND: checked when the server starts, given to every GFPGAN load, and the
    summary names the runtime that restored the faces."""
    from web.messages import summary_text
    from web.settings import parse_settings

    for argv, env in [(["--backend", "tensorrt"], None), ([], "tensorrt")]:
        if env is not None:
            monkeypatch.setenv("GFP_BACKEND", env)
        with pytest.raises(SystemExit):
            parse_settings(argv)
        assert "--backend must be one of auto, torch, openvino, got 'tensorrt'" in capsys.readouterr().err
    monkeypatch.setenv("GFP_BACKEND", "openvino")  # a flag wins over the environment, as for every setting
    settings = parse_settings(["--backend", "Torch"])
    assert settings.backend == "torch"

    served = RestoreEngine(device="cpu", backend=settings.backend, output_dir=tmp_path / "served")
    try:
        assert served.restorer_model("v1.4").info.backend == "torch"
        outcome = served.restore(PHOTO, RestoreOptions(**FAST))
    finally:
        served.close()
    assert outcome.backend == "torch"
    assert summary_text(outcome, "v1.4").startswith(f"**{outcome.summary}** with GFPGAN v1.4 on PyTorch.")


def test_a_version_openvino_cannot_run_falls_back_to_pytorch(isolated, monkeypatch, tmp_path, caplog):
    """A server set to openvino still serves GFPGAN v1 (the original architecture, which OpenVINO does not
    take): on PyTorch, with the reason in the log; the refusal never reaches a visitor."""
    import torch

    from gfp_core.archs import GFPGANv1

    folder = tmp_path / "models"
    folder.mkdir()
    torch.manual_seed(1)
    torch.save({"params_ema": GFPGANv1(out_size=64, narrow=0.25).state_dict()}, folder / "GFPGANv1.pth")
    monkeypatch.setenv("GFP_MODEL_DIRS", str(folder))
    monkeypatch.setenv("GFP_ALLOW_UNVERIFIED", "1")
    served = RestoreEngine(device="cpu", backend="openvino", output_dir=tmp_path / "out")
    try:
        loaded = served.restorer_model("v1")
    finally:
        served.close()
    assert isinstance(loaded.module, GFPGANv1) and loaded.info.backend == "torch"
    assert "GFPGAN v1 runs on PyTorch: backend openvino cannot be used" in caplog.text
