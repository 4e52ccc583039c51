"""The audio of a source file carried into a video being written, interleaved as the frames go in."""
from __future__ import annotations

import logging
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import InvalidVideoError
from .probe import open_video

log = logging.getLogger(__name__)


class AudioCarry:
    """Every audio stream of ``source``. Packets are copied as they are (no quality lost) when the
    output container takes their codec; otherwise they are decoded and encoded with ``fallback``.
    ``mode``: 'copy', the fallback codec's name, or None when the source has no audio (with several
    streams, the fallback's name if any stream needed it)."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self._stack = ExitStack()
        self._input = self._stack.enter_context(open_video(source))
        self._inputs = list(self._input.streams.audio)
        # the same shift as the frames from read_frames: times count from the file's start
        self._start = Fraction(self._input.start_time or 0, 1_000_000)
        self._routes: dict[int, tuple[Any, bool]] = {}  # source stream index → (output stream, copied)
        self._packets: Any = None
        self._next: Any = None
        self.mode: str | None = None

    def attach(self, output: Any, fallback: str) -> None:
        """Add the output streams (before the output's first packet is written)."""
        for stream in self._inputs:
            try:
                out, copied = output.add_stream_from_template(stream), True
            except ValueError:  # the container does not take this codec
                out, copied = self._encoder(output, stream, fallback), False
            self._routes[stream.index] = (out, copied)
            log.info("%s: audio stream %d %s", self.source, stream.index,
                     "copied" if copied else f"re-encoded from {stream.codec_context.name} to {fallback}")
        copied = [c for _out, c in self._routes.values()]
        self.mode = None if not copied else "copy" if all(copied) else fallback
        if self._inputs:
            self._packets = self._input.demux(*self._inputs)

    @staticmethod
    def _encoder(output: Any, stream: Any, codec: str) -> Any:
        rate = stream.codec_context.sample_rate
        if codec == "libopus" or rate not in (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000):
            rate = 48000  # what Opus takes, and a rate every AAC decoder plays
        mono = stream.codec_context.layout.nb_channels == 1
        # stereo at most (surround is folded down): a layout both encoders and every player take
        return output.add_stream(codec, rate=rate, layout="mono" if mono else "stereo")

    def write_until(self, output: Any, until: Fraction | None) -> None:
        """Write the packets that start before ``until`` seconds (None: all that are left)."""
        if self._packets is None:
            return
        try:
            while True:
                if self._next is None:
                    self._next = next(self._packets, None)
                    if self._next is None:
                        self._finish(output)
                        return
                packet = self._next
                if until is not None and packet.pts is not None and self._time(packet) >= until:
                    return
                self._next = None
                self._write(output, packet)
        except Exception as exc:
            import av

            if isinstance(exc, av.FFmpegError) and not isinstance(exc, OSError):
                raise InvalidVideoError(f"{self.source}: its audio could not be carried over ({exc}); "
                                        f"convert it with FFmpeg, or leave the audio out") from exc
            raise

    def _time(self, packet: Any) -> Fraction:
        return packet.pts * packet.time_base - self._start

    def _write(self, output: Any, packet: Any) -> None:
        out, copied = self._routes[packet.stream.index]
        shift = round(self._start / packet.time_base) if self._start else 0
        if copied:
            if packet.dts is None:  # the empty packet that ends each stream
                return
            packet.dts -= shift
            if packet.pts is not None:
                packet.pts -= shift
            packet.stream = out
            output.mux(packet)
            return
        for frame in packet.decode():  # an empty packet flushes the decoder
            if frame.pts is not None:
                frame.pts -= shift
            output.mux(out.encode(frame))

    def _finish(self, output: Any) -> None:
        for out, copied in self._routes.values():
            if not copied:
                output.mux(out.encode(None))
        self._packets = None

    def close(self) -> None:
        self._stack.close()
