"""Video files encoded one after the other joined into one, packet for packet (no re-encoding),
written atomically, with another file's audio carried over."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

from ..errors import InvalidVideoError
from .audio import AudioCarry
from .probe import open_video, video_stream
from .writer import CONTAINERS, muxer_options, partial_path


def join_videos(parts: Sequence[str | Path], path: str | Path, *, fps: Fraction | float | None = None,
                audio_from: str | Path | None = None) -> tuple[int, str | None]:
    """Write the video streams of ``parts`` (in order, each starting with a key frame, all encoded
    alike: one codec, size and time base, as :class:`~gfp_core.video.VideoWriter` writes the pieces
    of one clip) as one video at ``path``, with the audio of ``audio_from`` (copied, or re-encoded
    when the container does not take its codec). The parts' own timestamps are kept, so pieces cut
    from one clip join seamlessly. ``fps``: the nominal frame rate written in the header (None:
    the first part's). Returns (frames written, audio mode: 'copy', a codec name or None).

    Decoding times are set anew over the whole: the showing times in order, a packet or two
    earlier (as many as the parts' B-frames need), as one encoder would have set them. The parts'
    own cannot be kept: each begins with its own delay (or, from Matroska, none at all), so at the
    joins they would step back, or leave a gap that players and FFmpeg's frame-rate estimate take
    for a longer frame.

    Atomic, as :class:`~gfp_core.video.VideoWriter`: written under a hidden name, renamed over
    ``path`` only when complete."""
    import av

    path = Path(path)
    parts = [Path(p) for p in parts]
    if not parts:
        raise InvalidVideoError(f"{path}: no video pieces to join")
    muxer, _codec, audio_fallback = CONTAINERS[path.suffix.lower()]
    first = _describe(parts[0])
    for part in parts[1:]:
        other = _describe(part)
        if other[:4] != first[:4]:
            raise InvalidVideoError(f"{path}: the pieces {parts[0].name} and {part.name} were encoded with different "
                                    f"settings and cannot be joined; delete them and start again")
    time_base = first[2]
    fps = Fraction(fps).limit_denominator(1_000_000) if fps else first[4]
    step = max(1, round(1 / (fps * time_base)))  # ticks per frame
    decode_times = iter(_decode_times([_showing_times(part) for part in parts], step))
    partial = partial_path(path)
    carry = AudioCarry(Path(audio_from)) if audio_from is not None else None
    count = 0
    try:
        with av.open(str(partial), "w", format=muxer, options=muxer_options(muxer, time_base)) as out:
            with open_video(parts[0]) as box:
                stream = out.add_stream_from_template(video_stream(box, parts[0]))
            stream.time_base = time_base
            stream.codec_context.framerate = fps  # not the template's: its header's may be a tick rate
            if carry is not None:
                carry.attach(out, audio_fallback)
            for part in parts:
                with open_video(part) as box:
                    source = video_stream(box, part)
                    for packet in box.demux(source):
                        if not packet.size:  # the empty packet that ends the stream
                            continue
                        if carry is not None:
                            carry.write_until(out, packet.pts * packet.time_base)
                        packet.dts = next(decode_times)
                        packet.stream = stream
                        out.mux(packet)
                        count += 1
            if carry is not None:
                carry.write_until(out, None)
        os.replace(partial, path)
    except av.FFmpegError as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise
        raise InvalidVideoError(f"{path}: FFmpeg could not join the pieces ({exc}); delete them and start again") \
            from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        if carry is not None:
            carry.close()
    return count, None if carry is None else carry.mode


def _describe(part: Path) -> tuple[Any, ...]:
    """(codec, (width, height, pixel format), time base, codec setup bytes, frame rate) of a part's
    video: all but the rate must be the same in every part."""
    with open_video(part) as box:
        stream = video_stream(box, part)
        ctx = stream.codec_context
        return (ctx.name, (ctx.width, ctx.height, ctx.format.name if ctx.format else None),
                Fraction(stream.time_base), bytes(ctx.extradata or b""),
                Fraction(stream.average_rate or stream.guessed_rate or 30))


def _showing_times(part: Path) -> list[int]:
    """The showing time (ticks) of each video packet of ``part``, in decoding order."""
    with open_video(part) as box:
        times = [p.pts for p in box.demux(video_stream(box, part)) if p.size]
    if any(t is None for t in times):
        raise InvalidVideoError(f"{part}: a video piece without timestamps cannot be joined; delete it and start again")
    return times


def _decode_times(parts: Sequence[Sequence[int]], step: int) -> list[int]:
    """Decoding times for the packets of ``parts`` (showing times in decoding order) played one
    after the other: the showing times in order, ``depth`` packets back, where ``depth`` is how far
    any packet is decoded ahead of its place in showing order (its B-frames' reordering), so every
    packet is decoded no later than it is shown. The first ``depth`` are ``step`` ticks apart
    before the first showing time."""
    showing = sorted(t for times in parts for t in times)
    depth = 0
    for times in parts:
        rank = {t: i for i, t in enumerate(sorted(times))}
        depth = max(depth, *(j - rank[t] for j, t in enumerate(times)))
    return [showing[0] - (depth - j) * step if j < depth else showing[j - depth] for j in range(len(showing))]
