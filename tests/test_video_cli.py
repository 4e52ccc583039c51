"""Restoring video files: ``python -m gfp_core restore clip.mp4`` and the library call behind it,
``gfp_core.video.restore_video``, on real H.264 files of a real face (tests/clips.py) with an AAC
track: what a user would check — frames, rate, length, audio, faces changed and the rest not — and
that an interrupted run leaves nothing that looks finished and resumes to the same frames."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clip_files import audio_packets, write_clip
from clips import FACE_CENTRE, make_clip
from gfp_core.engine import Engine
from gfp_core.errors import InvalidVideoError
from gfp_core.face.detection import load_detector
from gfp_core.video import probe_video, read_frames, restore_video
from gfp_core.video.restore import frame_name, work_folder
from gfp_core.weights import load_model

FPS = 15
N = 16
#: mean absolute difference (levels) allowed after one more H.264 generation at crf 18 in 4:2:0: these
#: noisy frames come back within 1.7–2.7, a frame with a random-weight face's noise within 3.5; the
#: next frame of the clip is 27 or more away
LOSSY_MEAN = 5.0


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a busy machine two threads wait for each other more than they work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_model(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def detector():
    return load_detector("embedded")


@pytest.fixture(scope="module")
def clip():
    return make_clip("moving", frames=N, size=(256, 256), scale=0.6, seed=1, fps=FPS)  # a face box of about 60 px


@pytest.fixture(scope="module")
def clip_file(clip, tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", clip.frames, fps=FPS)


def decoded(path: Path) -> list[np.ndarray]:
    return [f.image for f in read_frames(path)]


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def face_distance(clip, shape: tuple[int, int]) -> np.ndarray:
    """``[N, H, W]``: each pixel's distance from the face's centre in that frame."""
    centres = clip.truth(np.array([FACE_CENTRE]))[:, 0]
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    return np.hypot(x[None] - centres[:, 0, None, None], y[None] - centres[:, 1, None, None])


def run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GFP_HOME": str(tmp_path / "home"), "GFP_MODEL_DIRS": "",
           "HF_HUB_CACHE": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "gfp_core", "restore", *args], capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.mark.heavy
def test_a_folder_of_photos_and_videos_restores_each_video_as_a_video(clip, clip_file, tmp_path, tiny_checkpoint):
    folder = tmp_path / "in"
    folder.mkdir()
    video = folder / "clip.mp4"
    video.write_bytes(clip_file.read_bytes())
    Image.fromarray(clip.photo).resize((256, 256)).save(folder / "photo.png")
    streamable = write_clip(tmp_path / "streamable.mp4", clip.frames, fps=FPS, faststart=True).read_bytes()
    (folder / "cut.mp4").write_bytes(streamable[:len(streamable) * 3 // 5])  # an unfinished download
    (folder / "notes.mov").write_text("not a video")
    out = tmp_path / "out"

    result = run_cli(str(folder), "-m", str(tiny_checkpoint), "--detector", "embedded", "-s", "1", "--frames",
                     "-o", str(out), tmp_path=tmp_path)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert (f"1 images restored (1 faces, 0 without a face), 1 video restored ({N} frames, {N} faces, "
            f"0 frames without a face), 0 skipped (output exists; --overwrite), 2 failed") in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2
    assert any("cut.mp4" in line and "cut short" in line for line in errors), errors
    assert any("notes.mov" in line and "not a readable video" in line for line in errors), errors
    assert (out / "restored_imgs" / "photo.png").is_file()

    restored = out / "restored_videos"
    assert sorted(p.name for p in restored.iterdir()) == ["clip.mp4"]  # no work folder, no partial file left
    source, result_info = probe_video(video), probe_video(restored / "clip.mp4")
    assert result_info.frame_count == source.frame_count == N
    assert result_info.fps == source.fps == FPS
    assert result_info.duration == pytest.approx(source.duration, abs=1 / FPS)
    assert (result_info.width, result_info.height) == (256, 256)
    assert result_info.audio_codecs == ("aac",)
    assert audio_packets(restored / "clip.mp4") == audio_packets(video)  # copied packet for packet

    inputs, outputs = decoded(video), decoded(restored / "clip.mp4")
    pngs = sorted((out / "restored_frames" / "clip").iterdir())
    assert [p.name for p in pngs] == [frame_name(i) for i in range(N)]
    assert pngs[0].name == "frame_000001.png"
    distance = face_distance(clip, (256, 256))
    for i, (before, after, png) in enumerate(zip(inputs, outputs, pngs)):
        frame = np.asarray(Image.open(png))
        face, far = distance[i] < 15, distance[i] > 100
        assert mean_diff(frame[face], before[face]) > 10, i  # the face was restored (random weights: changed)
        assert np.array_equal(frame[far], before[far]), i  # nothing else was touched …
        assert mean_diff(after[far], before[far]) < LOSSY_MEAN, i  # … but for one H.264 generation
        assert mean_diff(after, frame) < LOSSY_MEAN, i  # the video holds the PNG frames


def test_the_frames_are_those_of_the_engine_on_the_whole_clip(model, detector, clip_file, tmp_path):
    """Tracks, smoothing and the choice of faces come from the whole clip, as Engine.run on all its
    frames at once, though pass 2 runs a few frames at a time."""
    engine = Engine(model, detector=detector, smoothing=0.5, fps=FPS, select="largest")
    outcome = restore_video(engine, clip_file, tmp_path / "out.mkv", frames_dir=tmp_path / "frames", chunk_frames=3,
                            segment_frames=5)
    whole = engine.run(np.stack(decoded(clip_file)))
    assert outcome.frames == N and outcome.faces == N and outcome.largest_chunk == 3
    for i, expected in enumerate(whole.frames):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "frames" / frame_name(i))), expected), i
    info = probe_video(tmp_path / "out.mkv")
    assert info.container.startswith("matroska") and info.has_audio and outcome.audio == "copy"
    assert len(decoded(tmp_path / "out.mkv")) == N


def test_steadied_faces_carry_across_chunks_segments_and_a_resume(model, detector, tmp_path):
    """``steady``: each chunk continues from the chunk before, each segment from the one before
    (also when an earlier run restored it), so the file is Engine.run on the whole clip at once."""
    still = make_clip("still", frames=12, size=(256, 256), scale=0.6, seed=3, fps=FPS)
    src = write_clip(tmp_path / "still.mp4", still.frames, fps=FPS)
    engine = Engine(model, detector=detector, smoothing=0.5, steady=1.0, fps=FPS)
    frames = np.stack(decoded(src))
    whole = engine.run(frames)
    unsteadied = Engine(model, detector=detector, smoothing=0.5, fps=FPS).run(frames)
    assert max(mean_diff(a, b) for a, b in zip(whole.frames, unsteadied.frames)) > 0.2  # steadying did something
    settings = dict(chunk_frames=3, segment_frames=5, codec="ffv1")  # lossless: the frames themselves compared
    dst = tmp_path / "out.mkv"

    def stop_in_third_segment(stage: str, done: int, total: int) -> None:
        if stage == "restore" and done >= 10:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        restore_video(engine, src, dst, on_progress=stop_in_third_segment, **settings)
    assert len([p for p in work_folder(dst).iterdir() if p.name.endswith(".steady.npz")]) == 2
    outcome = restore_video(engine, src, dst, **settings)
    assert outcome.resumed_frames == 10
    for i, (got, expected) in enumerate(zip(decoded(dst), whole.frames, strict=True)):
        assert np.array_equal(got, expected), i


class Stop(Exception):
    pass


def test_an_interrupted_restore_resumes_to_the_same_frames(model, detector, clip_file, tmp_path):
    engine = Engine(model, detector=detector, smoothing=0.5)
    settings = dict(chunk_frames=2, segment_frames=4)
    reference = restore_video(engine, clip_file, tmp_path / "ref.mp4", frames_dir=tmp_path / "ref", **settings)
    assert reference.restored_frames == reference.detected_frames == N and reference.resumed_frames == 0
    assert reference.largest_chunk == 2  # pass 2 never held more than a chunk

    dst, frames = tmp_path / "out" / "clip.mp4", tmp_path / "frames"
    work = work_folder(dst)

    def stop_after(stage: str, frames_done: int):
        seen = {"stage": None, "done": 0}

        def on_progress(s: str, done: int, total: int) -> None:
            seen.update(stage=s, done=done)

        def should_stop() -> None:
            if seen["stage"] == stage and seen["done"] >= frames_done:
                raise KeyboardInterrupt  # as Ctrl-C
        return dict(on_progress=on_progress, should_stop=should_stop)

    with pytest.raises(KeyboardInterrupt):  # during detection: 4 frames' faces are saved
        restore_video(engine, clip_file, dst, frames_dir=frames, **settings, **stop_after("detect", 6))
    assert not dst.exists() and (work / "faces.npz").is_file()

    with pytest.raises(KeyboardInterrupt):  # in the third segment
        restore_video(engine, clip_file, dst, frames_dir=frames, **settings, **stop_after("restore", 10))
    assert not dst.exists() and not list(dst.parent.glob("*.mp4"))  # nothing that looks finished
    kept = sorted(p.name for p in work.iterdir() if p.suffix == ".mp4")
    assert len(kept) == 2 and not [p for p in work.iterdir() if "partial" in p.name]

    progress = []
    outcome = restore_video(engine, clip_file, dst, frames_dir=frames, **settings,
                            on_progress=lambda *report: progress.append(report))
    assert outcome.detected_frames == 0 and outcome.restored_frames == N - 8 and outcome.resumed_frames == 8
    assert [p for p in progress if p[0] == "restore"][0] == ("restore", 8, N)
    assert any("8 of 16 frames were restored by an earlier run" in note for note in outcome.notes)
    assert not work.exists()
    for i in range(N):  # bit for bit the uninterrupted run's frames
        assert (frames / frame_name(i)).read_bytes() == (tmp_path / "ref" / frame_name(i)).read_bytes(), i
    for a, b in zip(decoded(dst), decoded(tmp_path / "ref.mp4"), strict=True):
        assert np.array_equal(a, b)
    assert probe_video(dst).frame_count == N and audio_packets(dst) == audio_packets(clip_file)


def test_changed_options_start_afresh_and_a_stop_leaves_the_destination_as_it_was(model, detector, clip_file,
                                                                                 tmp_path):
    dst = tmp_path / "clip.mp4"
    dst.write_bytes(b"an earlier result")
    restored = {"frames": 0}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage == "restore":
            restored["frames"] = done

    def stop_after_a_segment() -> None:
        if restored["frames"] >= 4:
            raise Stop

    with pytest.raises(Stop):
        restore_video(Engine(model, detector=detector), clip_file, dst, segment_frames=4, chunk_frames=4,
                      on_progress=on_progress, should_stop=stop_after_a_segment)
    assert dst.read_bytes() == b"an earlier result"
    assert len(list(work_folder(dst).glob("*.mp4"))) == 1
    outcome = restore_video(Engine(model, detector=detector, fidelity=0.5), clip_file, dst, segment_frames=4,
                            chunk_frames=4)
    assert outcome.restored_frames == N and outcome.detected_frames == 0  # faces kept, segments not
    assert probe_video(dst).frame_count == N


def test_upscaling_makes_a_larger_video_of_even_size(model, detector, clip, tmp_path):
    src = write_clip(tmp_path / "small.mp4", clip.frames[:6, :, :150], fps=FPS, audio=False)  # 150 wide
    outcome = restore_video(Engine(model, detector=detector, upscale=1.5), src, tmp_path / "big.mp4",
                            frames_dir=tmp_path / "frames")
    assert outcome.size == (226, 384) and outcome.audio is None  # 225 wide, padded to even
    assert np.asarray(Image.open(tmp_path / "frames" / frame_name(0))).shape == (384, 225, 3)
    assert probe_video(tmp_path / "big.mp4").frame_count == 6


def test_a_damaged_video_raises_a_clear_error_and_writes_nothing(model, detector, clip_file, tmp_path):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip_file.read_bytes()[:3000])
    with pytest.raises(InvalidVideoError, match="not a readable video"):
        restore_video(Engine(model, detector=detector), cut, tmp_path / "out" / "cut.mp4")
    with pytest.raises(InvalidVideoError, match="cannot write a .avi video"):
        restore_video(Engine(model, detector=detector), clip_file, tmp_path / "out" / "clip.avi")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
