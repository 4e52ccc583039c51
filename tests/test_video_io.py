"""Video files in and out (gfp_core.video) on real clips encoded by PyAV here: what a user would
notice — frame count, frame rate, size, pixels, timing, audio — and clear errors for bad files."""
from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import Interpolation

from gfp_core.errors import InvalidImageError, InvalidVideoError
from gfp_core.video import VideoWriter, probe_video, read_frames

W, H, N, FPS = 96, 64, 12, 15
#: mean absolute difference (levels of 255) allowed after one H.264 generation at crf 18 in 4:2:0:
#: these frames come back within 1.2–2.1 (about 0.7 of it from halving the colour resolution);
#: wrong colours, a shifted or swapped frame cost far more
LOSSY_MEAN = 3.0


def pattern(i: int, width: int = W, height: int = H) -> np.ndarray:
    """Frame ``i`` of a smooth test clip: colour gradients with a yellow square that moves a step a frame."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([40 + x * 170 // max(width - 1, 1), 40 + y * 170 // max(height - 1, 1),
                    np.full_like(x, 100 + 8 * i)], axis=2).astype(np.uint8)
    img[8:24, 4 + 4 * i:20 + 4 * i] = (220, 200, 60)
    return img


def encode(path: Path, frames: list[np.ndarray], *, fps: int = FPS, audio: str | None = None,
           pts: list[int] | None = None, time_base: Fraction | None = None, rotation: float | None = None,
           faststart: bool = False) -> Path:
    """An H.264 clip written with PyAV directly (not with the code under test); ``audio``: the codec
    of a 440 Hz mono tone as long as the video."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "12"})
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        if time_base is not None:
            video.codec_context.time_base = time_base
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = out.add_stream(audio, rate=48000, layout="mono") if audio else None
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = pts[i] if pts is not None else i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if sound is not None:
            samples = round(48000 * len(frames) / fps)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
            for start in range(0, samples, 960):  # the encoder regroups them into its own frame size
                chunk = np.ascontiguousarray(tone[None, start:start + 960])
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts = 48000, start
                out.mux(sound.encode(frame))
            out.mux(sound.encode())
    return path


def packets(path: Path, kind: str) -> list[av.Packet]:
    with av.open(str(path)) as box:
        streams = getattr(box.streams, kind)
        return [p for p in box.demux(*streams) if p.size]


def frames_of(path: Path) -> list[np.ndarray]:
    return [f.image for f in read_frames(path)]


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def source() -> list[np.ndarray]:
    return [pattern(i) for i in range(N)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, source) -> Path:
    """An H.264 + AAC tone .mp4: 96×64, 12 frames at 15 fps."""
    return encode(tmp_path_factory.mktemp("clip") / "clip.mp4", source, audio="aac")


@pytest.fixture(scope="module")
def silent_clip(tmp_path_factory, source) -> Path:
    """The same pictures without audio, in .mkv (which stores no frame count)."""
    return encode(tmp_path_factory.mktemp("silent") / "silent.mkv", source)


# -- probe -----------------------------------------------------------------------------------------

def test_probe_reads_the_headers(clip):
    info = probe_video(clip)
    assert (info.width, info.height, info.rotation, info.pixels) == (W, H, 0, W * H)
    assert info.fps == Fraction(FPS) and isinstance(info.fps, Fraction)
    assert (info.frame_count, info.frame_count_estimated) == (N, False)
    assert info.duration == pytest.approx(N / FPS, abs=1e-3)
    assert (info.codec, info.pix_fmt, info.has_audio, info.audio_codecs) == ("h264", "yuv420p", True, ("aac",))
    assert info.file_size == clip.stat().st_size and info.container.startswith("mov,mp4")


def test_probe_estimates_the_count_a_container_does_not_store(silent_clip):
    info = probe_video(silent_clip)
    assert (info.frame_count, info.frame_count_estimated, info.has_audio) == (N, True, False)
    assert info.fps == FPS and (info.width, info.height) == (W, H)


def test_probe_reports_the_displayed_size_of_a_rotated_clip(tmp_path):
    """A phone held upright stores landscape frames and a 90° clockwise turn in the track header."""
    path = encode(tmp_path / "phone.mp4", [pattern(i) for i in range(3)], rotation=-90)
    info = probe_video(path)
    assert (info.width, info.height, info.rotation) == (H, W, 90)
    ours = frames_of(path)
    # PyAV's own reading of the display matrix, on the raw decoded frames (counter-clockwise degrees)
    exact = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT  # as read_frames
    with av.open(str(path)) as box:
        raw = [(f.to_ndarray(format="rgb24", interpolation=exact), f.rotation) for f in box.decode(video=0)]
    assert all(turn == -90 for _img, turn in raw)
    for mine, (img, turn) in zip(ours, raw, strict=True):
        assert mine.shape == (W, H, 3) and mine.flags.c_contiguous
        np.testing.assert_array_equal(mine, np.rot90(img, turn // 90))
    # turned clockwise, stored pixel (row 16, column 12), in the yellow square, shows at (12, H - 1 - 16)
    assert mean_diff(ours[0][12, H - 17], np.array([220, 200, 60])) < 10


# -- read ------------------------------------------------------------------------------------------

def test_read_streams_rgb_frames_with_their_times(clip, source):
    frames = list(read_frames(clip))
    assert [f.index for f in frames] == list(range(N))
    assert [f.time for f in frames] == [Fraction(i, FPS) for i in range(N)]
    assert all(f.duration == Fraction(1, FPS) for f in frames)
    for frame, truth in zip(frames, source, strict=True):
        assert frame.image.dtype == np.uint8 and frame.image.shape == (H, W, 3)
        assert mean_diff(frame.image, truth) < LOSSY_MEAN


def test_read_yields_before_the_end_of_the_file(tmp_path):
    """Frames come while the file is read: the first ones of a clip cut short arrive before the
    damage at its end is found, and taking one frame of a longer clip reads no further."""
    long_clip = encode(tmp_path / "long.mp4", [pattern(i % 20) for i in range(90)], faststart=True)
    first = list(itertools.islice(read_frames(long_clip), 1))
    assert len(first) == 1 and first[0].index == 0
    data = long_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])  # the index (at the front) still promises 90 frames
    frames = read_frames(cut)
    assert next(frames).index == 0
    with pytest.raises(InvalidVideoError, match=r"cut\.mp4: the video stops after \d+ frames.*cut short"):
        list(frames)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_damage_inside_a_clip_is_reported_with_the_frames_read(tmp_path, suffix):
    """Random bytes over the middle of the file: FFmpeg either fails to decode (MP4 here) or stops
    quietly as if the clip ended (MKV here); both are reported, never a silently shorter clip."""
    path = encode(tmp_path / f"clip{suffix}", [pattern(i % 20) for i in range(30)], faststart=suffix == ".mp4")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 200] = np.random.default_rng(1).bytes(200)
    path.write_bytes(bytes(data))
    assert probe_video(path).frame_count == 30  # the headers are intact
    with pytest.raises(InvalidVideoError, match=rf"clip\{suffix}: (damaged|the video stops) after \d+ frames"):
        list(read_frames(path))


# -- write -----------------------------------------------------------------------------------------

def test_h264_round_trip_keeps_count_rate_size_pixels_and_audio(clip, source, tmp_path):
    info = probe_video(clip)
    target = tmp_path / "out" / "restored.mp4"
    written = []
    with VideoWriter(target, info.fps, time_base=info.time_base, audio_from=clip) as out:
        for frame in read_frames(clip, info):
            out.write(frame.image, frame.time, frame.duration)
            written.append(frame.image)
    assert out.audio == "copy" and out.size == (W, H) and out.frame_count == N
    assert leftovers(target.parent) == ["restored.mp4"]
    back = probe_video(target)
    assert (back.frame_count, back.fps, back.width, back.height) == (N, info.fps, W, H)
    assert back.duration == pytest.approx(info.duration, abs=1e-3)
    assert [f.time for f in read_frames(target)] == [Fraction(i, FPS) for i in range(N)]
    for image, truth in zip(frames_of(target), written, strict=True):
        assert mean_diff(image, truth) < LOSSY_MEAN
    # the audio is the source's, packet for packet
    before, after = packets(clip, "audio"), packets(target, "audio")
    assert back.audio_codecs == ("aac",)
    assert [bytes(p) for p in after] == [bytes(p) for p in before]
    assert [p.pts * p.time_base for p in after] == [p.pts * p.time_base for p in before]


def test_ffv1_is_lossless_at_an_odd_size(tmp_path):
    frames = [pattern(i, 65, 47) for i in range(5)]
    target = tmp_path / "exact.mkv"
    with VideoWriter(target, 25, codec="ffv1") as out:
        for i, image in enumerate(frames):
            out.write(image if i % 2 else image.astype(np.float32) / 255)  # float in [0, 1] too
    assert out.size == (65, 47)
    back = frames_of(target)
    assert len(back) == 5
    for image, truth in zip(back, frames, strict=True):
        np.testing.assert_array_equal(image, truth)


def test_x264_rgb_at_crf_0_is_lossless(tmp_path, source):
    target = tmp_path / "exact.mp4"
    with VideoWriter(target, FPS, codec="libx264rgb", crf=0) as out:
        for image in source[:4]:
            out.write(image)
    for image, truth in zip(frames_of(target), source[:4], strict=True):
        np.testing.assert_array_equal(image, truth)


def test_odd_sizes_are_padded_to_even_for_yuv420p(tmp_path):
    frames = [pattern(i, 65, 47) for i in range(4)]
    target = tmp_path / "odd.mp4"
    with VideoWriter(target, FPS) as out:
        for image in frames:
            out.write(image)
    assert out.size == (66, 48)
    back = frames_of(target)
    assert len(back) == 4 and back[0].shape == (48, 66, 3)
    for image, truth in zip(back, frames, strict=True):
        assert mean_diff(image[:47, :65], truth) < LOSSY_MEAN
        assert mean_diff(image[:, 65], image[:, 64]) < LOSSY_MEAN  # the repeated last column


def test_variable_frame_rate_keeps_every_time(tmp_path, source):
    pts = [0, 40, 70, 160, 200, 210, 300, 333, 400, 480, 490, 600]  # milliseconds, irregular
    vfr = encode(tmp_path / "vfr.mp4", source, pts=pts, time_base=Fraction(1, 1000), audio="aac")
    info = probe_video(vfr)
    frames = list(read_frames(vfr, info))
    assert [f.time for f in frames] == [Fraction(p, 1000) for p in pts]
    target = tmp_path / "vfr_out.mp4"
    with VideoWriter(target, info.fps, time_base=info.time_base, audio_from=vfr) as out:
        for frame in frames:
            out.write(frame.image, frame.time, frame.duration)
    back = probe_video(target)
    assert (back.frame_count, back.fps) == (N, info.fps)
    assert [f.time for f in read_frames(target)] == [Fraction(p, 1000) for p in pts]


def test_audio_that_the_container_cannot_hold_is_reencoded(clip, tmp_path):
    """AAC cannot go into WebM: it is re-encoded as Opus, and the video is VP9."""
    target = tmp_path / "web.webm"
    with VideoWriter(target, FPS, audio_from=clip) as out:
        for frame in read_frames(clip):
            out.write(frame.image, frame.time)
    assert out.audio == "libopus"
    back = probe_video(target)
    assert (back.codec, back.audio_codecs, back.frame_count, back.fps) == ("vp9", ("opus",), N, FPS)
    tone = sum(p.duration for p in packets(target, "audio")) / 1000  # WebM ticks are milliseconds
    assert tone == pytest.approx(N / FPS, abs=0.03)


def test_audio_from_a_silent_file_adds_no_audio(silent_clip, tmp_path):
    target = tmp_path / "quiet.mp4"
    with VideoWriter(target, FPS, audio_from=silent_clip) as out:
        out.write(pattern(0))
    assert out.audio is None and not probe_video(target).has_audio


def test_an_exception_leaves_no_file(tmp_path, clip):
    target = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="restore failed"):
        with VideoWriter(target, FPS, audio_from=clip) as out:
            out.write(pattern(0))
            out.write(pattern(1))
            raise RuntimeError("restore failed")
    assert leftovers(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_as_it_was(tmp_path):
    target = tmp_path / "kept.mp4"
    target.write_bytes(b"the previous result")
    with pytest.raises(InvalidImageError, match="frame 1 is 64x48, the video is 96x64"):
        with VideoWriter(target, FPS) as out:
            out.write(pattern(0))
            out.write(pattern(1, 64, 48))
    assert target.read_bytes() == b"the previous result" and leftovers(tmp_path) == ["kept.mp4"]
    with pytest.raises(InvalidVideoError, match="no frame was written"):
        with VideoWriter(target, FPS):
            pass
    assert leftovers(tmp_path) == ["kept.mp4"]


@pytest.mark.parametrize("name, kwargs, message", [
    ("out.gif", {}, r"cannot write a \.gif video; name it \.mp4"),
    ("out.webm", {"codec": "ffv1"}, r"a \.webm file cannot hold ffv1 video; name it .*\.mkv"),
    ("out.mp4", {"codec": "no-such-codec"}, r"no video encoder named 'no-such-codec'"),
])
def test_bad_outputs_are_refused_before_any_work(tmp_path, name, kwargs, message):
    with pytest.raises(InvalidVideoError, match=message):
        VideoWriter(tmp_path / name, FPS, **kwargs)
    assert leftovers(tmp_path) == []


# -- bad files -------------------------------------------------------------------------------------

def _bad_files(folder: Path, clip: Path) -> dict[str, tuple[Path, str]]:
    from PIL import Image

    rng = np.random.default_rng(0)
    picture = folder / "photo.mp4"
    Image.fromarray(pattern(0)).save(picture, format="PNG")
    data = clip.read_bytes()  # PyAV writes the index (moov) last, as a camera does
    song = folder / "song.m4a"
    with av.open(str(song), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    files = {
        "random": (rng.bytes(4096), r"not a readable video"),
        "truncated": (data[: len(data) // 2], r"not a readable video \(damaged, cut short"),
        "empty": (b"", r"empty file"),
        "text": (b"hello, this is not a video\n" * 20, r"not a readable video"),
    }
    out = {}
    for name, (content, message) in files.items():
        path = folder / f"{name}.mp4"
        path.write_bytes(content)
        out[name] = (path, message)
    out["picture"] = (picture, r"not a supported video container \(FFmpeg reads it as 'png_pipe'; a picture")
    out["audio only"] = (song, r"no video stream")
    out["missing"] = (folder / "missing.mp4", r"no such file")
    return out


def test_bad_files_raise_a_helpful_error(tmp_path, clip):
    for kind, (path, message) in _bad_files(tmp_path, clip).items():
        with pytest.raises(InvalidVideoError, match=message) as caught:
            probe_video(path)
        assert str(path) in str(caught.value), kind
        with pytest.raises(InvalidVideoError, match=message):
            read_frames(path)  # checked when called, before the first frame is asked for
        if kind != "audio only":  # a music file is a fine source of audio
            with pytest.raises(InvalidVideoError, match=message):
                VideoWriter(tmp_path / "out" / "x.mp4", FPS, audio_from=path)
    assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == []


def test_the_error_is_a_value_error_front_ends_already_report():
    assert issubclass(InvalidVideoError, InvalidImageError) and issubclass(InvalidVideoError, ValueError)
