"""Audio sources a media leg plays: int16 samples at 8 kHz, read one 20 ms frame at a time.

The media clock calls ``read`` on its own task once per tick for every playing leg,
so ``read`` must be cheap and must never block: every source here holds its audio in
memory and hands out views. Loading and resampling (``WavFile``) happen in the
constructor; for large files build it off the loop with ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import enum
import io
import logging
import math
import os
import struct
import wave
from collections import deque
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from dialflow.rtp.dtmf import PAUSE_CHARS, validate_digits

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "AudioSource",
    "InbandDtmf",
    "Playback",
    "PlaybackQueue",
    "PlaybackState",
    "RawPcm",
    "Silence",
    "ToneSource",
    "WavAudio",
    "WavFile",
    "decode_wav",
    "fit_frame",
    "resample_to_8k",
]

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 8000
#: One 20 ms frame at 8 kHz.
FRAME_SAMPLES: Final = 160
Samples = npt.NDArray[np.int16]

_INT16: Final = np.dtype(np.int16)
_FRAME_SHAPE: Final = (FRAME_SAMPLES,)
_ZEROS: Final = np.zeros(SAMPLE_RATE, dtype=np.int16)
_ZEROS.flags.writeable = False


@runtime_checkable
class AudioSource(Protocol):
    """Anything that yields int16 8 kHz mono samples.

    ``read(n)`` returns up to ``n`` samples (fewer only at the end; the leg pads the
    last frame with silence), or None when the source is finished. It runs on the
    media clock's task: no blocking, no awaiting.
    """

    def read(self, n: int = 160) -> Samples | None:
        """The next ``n`` samples, or None when finished."""
        ...


class PlaybackState(enum.Enum):
    """Life of one ``play()`` request."""

    QUEUED = "queued"
    PLAYING = "playing"
    FINISHED = "finished"  # the source ran out
    STOPPED = "stopped"  # stop(), an interrupting play(), or the leg closed
    FAILED = "failed"  # the source raised (see ``Playback.error``)


class Playback:
    """Handle of one queued or playing source: ``await handle.done()``, ``handle.stop()``."""

    __slots__ = ("_future", "_queue", "error", "source", "state")

    def __init__(self, queue: PlaybackQueue, source: AudioSource) -> None:
        self._queue = queue
        self.source = source
        self.state = PlaybackState.QUEUED
        self.error: BaseException | None = None
        self._future: asyncio.Future[PlaybackState] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        return f"<Playback {self.state.value} {self.source!r}>"

    @property
    def finished(self) -> bool:
        """True once the playback will produce no more audio."""
        return self._future.done()

    async def done(self) -> PlaybackState:
        """Wait until the playback ends; returns FINISHED, STOPPED or FAILED."""
        return await asyncio.shield(self._future)

    def stop(self) -> None:
        """Stop this playback (or drop it from the queue); the next queued one starts."""
        self._queue.stop(self)

    def _finish(self, state: PlaybackState, error: BaseException | None = None) -> None:
        if not self._future.done():
            self.state = state
            self.error = error
            self._future.set_result(state)


class PlaybackQueue:
    """What a leg plays: the current source and those queued after it, one frame at a time.

    Must be used on the event loop's thread (playbacks resolve futures).
    """

    __slots__ = ("_current", "_queue")

    def __init__(self) -> None:
        self._current: Playback | None = None
        self._queue: deque[Playback] = deque()

    @property
    def current(self) -> Playback | None:
        """The playback in progress, if any."""
        return self._current

    def __len__(self) -> int:
        return (self._current is not None) + len(self._queue)

    def play(self, source: AudioSource, *, interrupt: bool = True) -> Playback:
        """Queue ``source``; with ``interrupt`` stop everything else first."""
        playback = Playback(self, source)
        if interrupt:
            self.stop_all()
        if self._current is None:
            self._current = playback
            playback.state = PlaybackState.PLAYING
        else:
            self._queue.append(playback)
        return playback

    def stop(self, playback: Playback) -> None:
        """Stop one playback (current or queued)."""
        if playback is self._current:
            self._advance(PlaybackState.STOPPED)
        elif playback in self._queue:
            self._queue.remove(playback)
            playback._finish(PlaybackState.STOPPED)

    def stop_all(
        self, state: PlaybackState = PlaybackState.STOPPED, error: BaseException | None = None
    ) -> None:
        """End the current and every queued playback with ``state``."""
        current, self._current = self._current, None
        if current is not None:
            current._finish(state, error)
        while self._queue:
            self._queue.popleft()._finish(state, error)

    def read_frame(self) -> Samples | None:
        """The next 160 samples of whatever plays, or None when nothing does.

        A finished source hands over to the next queued one within the same frame; a
        source that raises ends FAILED (logged) instead of breaking the caller.
        """
        while (playback := self._current) is not None:
            try:
                frame = playback.source.read(FRAME_SAMPLES)
                if frame is not None:
                    # Fast path for the usual exact int16 frame; fit_frame checks the rest.
                    if frame.dtype is _INT16 and frame.shape == _FRAME_SHAPE:
                        return frame
                    return fit_frame(frame)
            except Exception as exc:
                log.warning("playback source %r failed: %r", playback.source, exc)
                self._advance(PlaybackState.FAILED, exc)
                continue
            self._advance(PlaybackState.FINISHED)
        return None

    def _advance(self, state: PlaybackState, error: BaseException | None = None) -> None:
        if self._current is not None:
            self._current._finish(state, error)
        self._current = self._queue.popleft() if self._queue else None
        if self._current is not None:
            self._current.state = PlaybackState.PLAYING


def fit_frame(frame: npt.ArrayLike) -> Samples:
    """Exactly 160 int16 samples: pad a short last frame with silence, cut a long one."""
    arr = np.asarray(frame)
    if arr.dtype != np.int16:
        raise TypeError(f"audio sources must return int16 samples, got {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError("audio sources must return 1-D frames")
    n = arr.shape[0]
    if n == FRAME_SAMPLES:
        return arr
    if n > FRAME_SAMPLES:
        return arr[:FRAME_SAMPLES]
    out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    out[:n] = arr
    return out


class Silence:
    """Zeros, for ``ms`` milliseconds or forever (``ms=None``)."""

    __slots__ = ("_remaining",)

    def __init__(self, ms: int | None = None) -> None:
        self._remaining = None if ms is None else ms * SAMPLE_RATE // 1000

    def read(self, n: int = 160) -> Samples | None:
        """The next ``n`` zero samples (a shared read-only array)."""
        if self._remaining is None:
            return _ZEROS[:n]
        if self._remaining <= 0:
            return None
        take = min(n, self._remaining)
        self._remaining -= take
        return _ZEROS[:take]


class RawPcm:
    """An in-memory int16 mono signal (an array, or little-endian bytes) at 8 kHz.

    Other sample rates are resampled once at construction.
    """

    __slots__ = ("_pos", "samples")

    def __init__(self, data: npt.ArrayLike | bytes, *, sample_rate: int = SAMPLE_RATE) -> None:
        if isinstance(data, (bytes, bytearray, memoryview)):
            arr = np.frombuffer(data, dtype="<i2").astype(np.int16)
        else:
            arr = np.asarray(data)
            if arr.ndim != 1:
                raise ValueError("RawPcm takes a 1-D mono signal")
            if arr.dtype != np.int16:
                raise TypeError(f"RawPcm takes int16 samples, got {arr.dtype}")
        if sample_rate != SAMPLE_RATE:
            arr = resample_to_8k(arr.astype(np.float64) / 32768.0, sample_rate)
        self.samples: Samples = np.ascontiguousarray(arr, dtype=np.int16)
        self._pos = 0

    @property
    def duration_ms(self) -> int:
        """Length of the whole signal in milliseconds."""
        return len(self.samples) * 1000 // SAMPLE_RATE

    def read(self, n: int = 160) -> Samples | None:
        """The next ``n`` samples as a view, or None at the end."""
        pos = self._pos
        if pos >= len(self.samples):
            return None
        self._pos = pos + n
        return self.samples[pos : pos + n]

    def rewind(self) -> None:
        """Start again from the first sample."""
        self._pos = 0


class ToneSource:
    """A sine tone of ``freq`` Hz for ``ms`` milliseconds (None: forever), phase-continuous.

    Integer frequencies repeat exactly every second at 8 kHz, so one second is computed
    once and frames are views into it (no per-frame maths on the clock task).
    """

    __slots__ = ("_amplitude", "_n", "_remaining", "_step", "_table")

    def __init__(self, freq: float, ms: int | None = 1000, *, amplitude: float = 0.5) -> None:
        if not 0 < freq < SAMPLE_RATE / 2:
            raise ValueError("tone frequency must be between 0 and 4000 Hz")
        self._step = 2.0 * math.pi * freq / SAMPLE_RATE
        self._amplitude = amplitude * 32767.0
        self._n = 0
        self._remaining = None if ms is None else ms * SAMPLE_RATE // 1000
        self._table: Samples | None = None
        if float(freq).is_integer():
            # Two seconds, so any read of up to one second starting in the first is a view.
            self._table = self._synth(0, 2 * SAMPLE_RATE)

    def _synth(self, start: int, n: int) -> Samples:
        idx = np.arange(start, start + n, dtype=np.float64)
        return np.round(self._amplitude * np.sin(self._step * idx)).astype(np.int16)

    def read(self, n: int = 160) -> Samples | None:
        """The next ``n`` samples of the tone, or None once ``ms`` have been played."""
        if self._remaining is not None:
            if self._remaining <= 0:
                return None
            n = min(n, self._remaining)
            self._remaining -= n
        start = self._n
        self._n += n
        if self._table is not None and n <= SAMPLE_RATE:
            pos = start % SAMPLE_RATE
            return self._table[pos : pos + n]
        return self._synth(start, n)


# ITU-T Q.23 DTMF frequency pairs (row, column).
_DTMF_FREQS: Final = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}  # fmt: skip


class InbandDtmf(RawPcm):
    """DTMF as audio (ITU-T Q.23 dual tones), for peers without RFC 4733 telephone-event.

    Each digit is ``duration_ms`` of tone at about -7 dBm0 per frequency, separated by
    ``gap_ms`` of silence; ``w`` is ``pause_ms`` of silence.
    """

    __slots__ = ()

    def __init__(
        self, digits: str, duration_ms: int = 100, *, gap_ms: int = 50, pause_ms: int = 500
    ) -> None:
        parts: list[npt.NDArray[np.float64]] = []
        tone_n = duration_ms * SAMPLE_RATE // 1000
        t = np.arange(tone_n, dtype=np.float64) / SAMPLE_RATE
        previous_was_digit = False
        for ch in validate_digits(digits):
            if ch in PAUSE_CHARS:
                parts.append(np.zeros(pause_ms * SAMPLE_RATE // 1000))
                previous_was_digit = False
                continue
            if previous_was_digit:
                parts.append(np.zeros(gap_ms * SAMPLE_RATE // 1000))
            low, high = _DTMF_FREQS[ch]
            parts.append(0.3 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)))
            previous_was_digit = True
        signal = np.concatenate(parts) if parts else np.zeros(0)
        super().__init__(np.round(signal * 32767.0).astype(np.int16))


class WavFile(RawPcm):
    """A WAV file, decoded and converted to 8 kHz mono int16 at construction.

    Accepts what :func:`decode_wav` reads (integer PCM, float, G.711 µ-law/A-law, any
    channel count and rate), resampled with a polyphase anti-aliasing filter.
    """

    __slots__ = ("channels", "source_rate", "source_width")

    def __init__(self, file: str | os.PathLike[str] | BinaryIO) -> None:
        if isinstance(file, (str, os.PathLike)):
            with open(file, "rb") as fh:
                raw = fh.read()
        else:
            raw = file.read()
        audio = decode_wav(raw)
        self.channels = audio.channels
        self.source_rate = audio.rate
        self.source_width = audio.width
        if audio.rate != SAMPLE_RATE:
            super().__init__(resample_to_8k(audio.signal, audio.rate))
        else:
            super().__init__(_float_to_int16(audio.signal))


@dataclass(slots=True, frozen=True)
class WavAudio:
    """A decoded WAV file: mono float64 samples in [-1, 1] and what the file said."""

    signal: npt.NDArray[np.float64]
    rate: int
    channels: int
    width: int
    """Bytes per sample in the file (1 for 8-bit PCM and for G.711)."""


def decode_wav(raw: bytes) -> WavAudio:
    """Decode a whole WAV file; channels are averaged to mono.

    Integer PCM of 8 (unsigned), 16, 24 and 32 bits, 32/64-bit float, and G.711 µ-law and
    A-law (format tags 7 and 6: how many PBXes and carriers store call recordings), plain or
    WAVE_FORMAT_EXTENSIBLE. Raises ValueError for anything else. The stdlib ``wave`` module
    reads only plain integer PCM, so the rest goes through a small RIFF reader here.
    """
    try:
        with wave.open(io.BytesIO(raw), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
        tag = _WAVE_FORMAT_PCM
    except (wave.Error, EOFError) as exc:
        tag, channels, width, rate, frames = _read_riff(raw, exc)
    if rate <= 0:
        raise ValueError(f"WAV sample rate {rate} is not a rate")
    return WavAudio(_to_float(frames, width, channels, tag), rate, channels, width)


def resample_to_8k(signal: npt.NDArray[np.floating], rate: int) -> Samples:
    """Resample a float signal in [-1, 1] from ``rate`` Hz to 8 kHz int16.

    ``scipy.signal.resample_poly`` filters with a Kaiser-windowed FIR low-pass at the
    new Nyquist frequency, so content above 4 kHz does not alias into the band.
    """
    from scipy.signal import resample_poly  # imported here: ~0.2 s, only when needed

    g = math.gcd(SAMPLE_RATE, rate)
    out = resample_poly(np.asarray(signal, dtype=np.float64), SAMPLE_RATE // g, rate // g)
    return _float_to_int16(out)


def _float_to_int16(signal: npt.NDArray[np.floating]) -> Samples:
    return np.clip(np.round(signal * 32768.0), -32768, 32767).astype(np.int16)


def _to_float(frames: bytes, width: int, channels: int, tag: int) -> npt.NDArray[np.float64]:
    """Decode interleaved little-endian samples to a mono float64 signal in [-1, 1]."""
    if tag in (_WAVE_FORMAT_MULAW, _WAVE_FORMAT_ALAW):
        from dialflow.rtp.g711 import alaw_decode, ulaw_decode

        if width != 1:
            raise ValueError(f"G.711 WAV with {width}-byte samples")
        codes = np.frombuffer(frames, dtype=np.uint8)
        pcm = ulaw_decode(codes) if tag == _WAVE_FORMAT_MULAW else alaw_decode(codes)
        data = pcm.astype(np.float64) / 32768.0
    elif tag == _WAVE_FORMAT_IEEE_FLOAT:
        if width not in (4, 8):
            raise ValueError(f"unsupported float WAV sample width {width}")
        data = np.frombuffer(
            frames[: len(frames) // width * width], dtype="<f4" if width == 4 else "<f8"
        ).astype(np.float64)
    elif tag != _WAVE_FORMAT_PCM:
        raise ValueError(f"unsupported WAV format tag {tag}")
    elif width == 1:
        # WAV 8-bit PCM is unsigned, centred on 128.
        data = (np.frombuffer(frames, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(frames[: len(frames) // 2 * 2], dtype="<i2").astype(np.float64)
        data /= 32768.0
    elif width == 3:
        b = np.frombuffer(frames[: len(frames) // 3 * 3], dtype=np.uint8).reshape(-1, 3)
        v = (
            b[:, 0].astype(np.int32)
            | (b[:, 1].astype(np.int32) << 8)
            | (b[:, 2].astype(np.int32) << 16)
        )
        v = np.where(v >= 1 << 23, v - (1 << 24), v)  # sign-extend 24 bits
        data = v.astype(np.float64) / float(1 << 23)
    elif width == 4:
        data = np.frombuffer(frames[: len(frames) // 4 * 4], dtype="<i4").astype(np.float64)
        data /= float(1 << 31)
    else:
        raise ValueError(f"unsupported WAV sample width {width}")
    if channels > 1:
        data = data[: len(data) // channels * channels].reshape(-1, channels).mean(axis=1)
    return data


_WAVE_FORMAT_PCM: Final = 1
_WAVE_FORMAT_IEEE_FLOAT: Final = 3
_WAVE_FORMAT_ALAW: Final = 6
_WAVE_FORMAT_MULAW: Final = 7
_WAVE_FORMAT_EXTENSIBLE: Final = 0xFFFE
_KNOWN_TAGS: Final = (
    _WAVE_FORMAT_PCM,
    _WAVE_FORMAT_IEEE_FLOAT,
    _WAVE_FORMAT_ALAW,
    _WAVE_FORMAT_MULAW,
)


def _read_riff(raw: bytes, cause: Exception) -> tuple[int, int, int, int, bytes]:
    """Minimal RIFF/WAVE reader: (format tag, channels, sample width, rate, frames)."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"not a WAV file: {cause}") from cause
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack_from("<I", raw, pos + 4)[0]
        # A streamed file may leave the data size at 0 or 0xFFFFFFFF: what is there counts.
        body = raw[pos + 8 : pos + 8 + size] if size or cid != b"data" else raw[pos + 8 :]
        if cid == b"fmt ":
            if len(body) < 16:
                raise ValueError("WAV fmt chunk too short")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]  # first 2 bytes of SubFormat GUID
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise ValueError("WAV data chunk before fmt chunk")
            tag, channels, rate, bits = fmt
            if tag not in _KNOWN_TAGS or channels < 1:
                raise ValueError(f"unsupported WAV format tag {tag}") from cause
            return tag, channels, (bits + 7) // 8, rate, body
        pos += 8 + size + (size & 1)  # chunks are word-aligned
    raise ValueError("WAV file has no data chunk") from cause
