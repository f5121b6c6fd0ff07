"""Text-to-speech for prompts: flite (default) or espeak-ng, rendered off the loop and cached.

Voice choice (measured, docs/speech.md): flite's diphone voices are what pocketsphinx
understands over a G.711 line — ``kal16`` and ``awb`` well, ``slt``/``rms`` less, espeak-ng
hardly at all. ``kal16`` is the default (best constrained accuracy on the 30-prompt bench).

Two ways to run flite, same samples (checked sample for sample):

- ``lib``: libflite through ctypes, in a worker thread (ctypes releases the GIL).
  ~3.8 ms for 7.4 s of speech. libflite is not thread-safe, so calls are serialised by a
  process-wide lock; at ~2,000× real time one thread is plenty.
- ``cli``: the ``flite`` binary per render (``-t TEXT -o /dev/stdout``), ~13 ms for the same
  prompt: the process start costs ~9 ms. Used when libflite cannot be loaded.

Text is passed as one argv element or a C string, never through a shell; control
characters are removed and the length capped (:func:`sanitize_text`).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import re
import shutil
import struct
import subprocess
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from dialflow.speech.audio import normalize_level, to_8k
from dialflow.speech.cache import CacheKey, PromptCache

__all__ = [
    "DEFAULT_VOICE",
    "MAX_TEXT_CHARS",
    "TtsEngine",
    "TtsError",
    "Voice",
    "sanitize_text",
]

log = logging.getLogger(__name__)

DEFAULT_VOICE: Final = "kal16"
MAX_TEXT_CHARS: Final = 2000
_FLITE_VOICES: Final = ("kal16", "awb", "kal", "rms", "slt")  # awb_time only speaks times
_SUBPROCESS_TIMEOUT_S: Final = 30.0
_CONTROL_RE: Final = re.compile(r"\s+")
_ESPEAK_VOICE_RE: Final = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")
_EMPTY: Final = np.zeros(0, dtype=np.int16)
_EMPTY.flags.writeable = False
_CACHE_SALT: Final = "dialflow-tts-1"

Int16Array = npt.NDArray[np.int16]
FliteBackend = Literal["auto", "lib", "cli"]


class TtsError(Exception):
    """A prompt cannot be rendered: engine not installed, unknown voice, text too long."""


@dataclass(slots=True, frozen=True)
class Voice:
    """An engine and one of its voices. ``str(voice)`` is the name ``render`` accepts."""

    engine: Literal["flite", "espeak"]
    name: str

    def __str__(self) -> str:
        return self.name if self.engine == "flite" else f"espeak:{self.name}"


def sanitize_text(text: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Prompt text made safe to synthesise.

    Control and format characters (NUL, escapes, bidi overrides…) become spaces,
    whitespace runs collapse; text longer than ``max_chars`` after that is refused with
    :class:`TtsError` — better a clear error at the node than half a prompt on the line.
    """
    if not isinstance(text, str):
        raise TtsError(f"prompt text must be a string, got {type(text).__name__}")
    cleaned = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    cleaned = _CONTROL_RE.sub(" ", cleaned).strip()
    if len(cleaned) > max_chars:
        raise TtsError(f"prompt text is {len(cleaned)} characters; the limit is {max_chars}")
    return cleaned


def _ascii_for_flite(text: str) -> str:
    """flite reads English in ASCII: "café" -> "cafe"; other scripts are dropped."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def parse_wav(data: bytes) -> tuple[Int16Array, int]:
    """Mono 16-bit PCM samples and rate from WAV bytes.

    Tolerates the streaming headers espeak-ng writes to a pipe (sizes of 0 or 0x7FFFFFFF):
    the data chunk runs to the end of the bytes.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise TtsError("synthesiser output is not a WAV file")
    pos = 12
    rate = channels = bits = 0
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt ":
            _fmt, channels, rate, _br, _align, bits = struct.unpack_from("<HHIIHH", data, body)
        elif cid == b"data":
            if bits != 16 or channels < 1:
                raise TtsError(f"unsupported WAV: {bits}-bit, {channels} channels")
            end = min(len(data), body + size) if 0 < size < 0x7FFFFFFF else len(data)
            end -= (end - body) % (2 * channels)
            pcm = np.frombuffer(data[body:end], dtype="<i2").astype(np.int16)
            if channels > 1:
                pcm = pcm.reshape(-1, channels)[:, 0].copy()
            return pcm, rate
        pos = body + size + (size & 1)
    raise TtsError("WAV output has no data chunk")


# --- flite through ctypes -------------------------------------------------------------------


class _CstWave(ctypes.Structure):
    # flite/include/cst_wave.h: typedef struct cst_wave_struct {...} cst_wave;
    _fields_ = [
        ("type", ctypes.c_char_p),
        ("sample_rate", ctypes.c_int),
        ("num_samples", ctypes.c_int),
        ("num_channels", ctypes.c_int),
        ("samples", ctypes.POINTER(ctypes.c_short)),
    ]


class _FliteLibrary:
    """libflite loaded once per process; every call under one lock (flite is not thread-safe)."""

    _instance: _FliteLibrary | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lib = _load_shared("flite", global_=True)
        for dep in ("flite_usenglish", "flite_cmulex"):
            _load_shared(dep, global_=True)
        self._lib.flite_init.restype = ctypes.c_int
        self._lib.flite_text_to_wave.restype = ctypes.POINTER(_CstWave)
        self._lib.flite_text_to_wave.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        self._lib.delete_wave.argtypes = [ctypes.POINTER(_CstWave)]
        self._lib.delete_wave.restype = None
        self._lib.flite_init()
        self._voices: dict[str, int] = {}
        self.available = tuple(v for v in _FLITE_VOICES if _find_shared(f"flite_cmu_us_{v}"))

    @classmethod
    def get(cls) -> _FliteLibrary:
        """The process-wide instance; OSError when libflite is not installed."""
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _voice(self, name: str) -> int:
        ptr = self._voices.get(name)
        if ptr is None:
            lib = _load_shared(f"flite_cmu_us_{name}", global_=False)
            register = getattr(lib, f"register_cmu_us_{name}")
            register.restype = ctypes.c_void_p
            register.argtypes = [ctypes.c_char_p]
            ptr = register(None)
            if not ptr:
                raise TtsError(f"flite voice {name} failed to load")
            self._voices[name] = ptr
        return ptr

    def synthesize(self, text: str, voice: str) -> tuple[Int16Array, int]:
        """Blocking: run in a worker thread."""
        with self._lock:
            wave = self._lib.flite_text_to_wave(text.encode("ascii"), self._voice(voice))
            if not wave:
                raise TtsError("flite returned no audio")
            try:
                w = wave.contents
                n = w.num_samples * max(1, w.num_channels)
                pcm = (
                    np.ctypeslib.as_array(w.samples, shape=(n,)).astype(np.int16)
                    if n > 0
                    else np.zeros(0, dtype=np.int16)
                )
                rate = int(w.sample_rate)
                if w.num_channels > 1:
                    pcm = pcm.reshape(-1, w.num_channels)[:, 0].copy()
            finally:
                self._lib.delete_wave(wave)
        return pcm, rate


def _find_shared(name: str) -> str | None:
    soname = f"lib{name}.so.1"
    try:
        ctypes.CDLL(soname)
        return soname
    except OSError:
        return ctypes.util.find_library(name)


def _load_shared(name: str, global_: bool) -> ctypes.CDLL:
    path = _find_shared(name)
    if path is None:
        raise OSError(f"lib{name} not found")
    return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL if global_ else ctypes.RTLD_LOCAL)


# --- the engine -----------------------------------------------------------------------------


class TtsEngine:
    """Renders prompt text to 8 kHz int16 audio; async, cached, one render per distinct prompt.

    ``await engine.render("Press 1 for sales")`` returns a read-only int16 array at 8 kHz
    (copy it to modify). Voices: flite names (``kal16``, ``awb``, …, also ``flite:kal16``)
    and ``espeak:<voice>`` (``espeak:en-us``) when espeak-ng is installed.
    Renders that are in flight are shared: ten calls starting the same new prompt at once
    render it once.
    """

    def __init__(
        self,
        *,
        default_voice: str = DEFAULT_VOICE,
        cache_bytes: int = 64 << 20,
        cache_dir: str | None = None,
        max_chars: int = MAX_TEXT_CHARS,
        flite_backend: FliteBackend = "auto",
        flite_path: str = "flite",
        espeak_path: str = "espeak-ng",
        level_dbfs: float | None = -20.0,
    ) -> None:
        self.default_voice = default_voice
        self.max_chars = max_chars
        self.level_dbfs = level_dbfs
        self._backend = flite_backend
        self._flite_path = flite_path
        self._espeak_path = espeak_path
        salt = f"{_CACHE_SALT}|{level_dbfs}"
        self.cache = PromptCache(cache_bytes, cache_dir, salt=salt)
        self._inflight: dict[CacheKey, asyncio.Task[Int16Array]] = {}
        self._flite_voices: tuple[str, ...] | None = None
        self._espeak_voices: tuple[str, ...] | None = None
        self.render_count = 0
        """Prompts actually synthesised (cache misses that reached an engine)."""

    # voices ----------------------------------------------------------------------------
    def voices(self) -> list[str]:
        """Installed voices, default first. Probes the engines once (a few ms, blocking)."""
        names = [str(Voice("flite", v)) for v in self._flite_voice_names()]
        names += [f"espeak:{v}" for v in self._espeak_voice_names()]
        if self.default_voice in names:
            names.remove(self.default_voice)
            names.insert(0, self.default_voice)
        return names

    def resolve_voice(self, voice: str | None) -> Voice:
        """Parse a voice name (None: the default); :class:`TtsError` if it is not valid."""
        name = (voice or self.default_voice).strip()
        engine, _, rest = name.partition(":")
        if rest and engine in ("espeak", "espeak-ng"):
            if not _ESPEAK_VOICE_RE.match(rest):
                raise TtsError(f"bad espeak voice name {rest!r}")
            return Voice("espeak", rest)
        if rest and engine == "flite":
            name = rest
        if name not in _FLITE_VOICES:
            raise TtsError(
                f"unknown voice {voice!r}: flite voices are {', '.join(_FLITE_VOICES)}; "
                "espeak-ng voices are written espeak:<name>"
            )
        return Voice("flite", name)

    def _flite_voice_names(self) -> tuple[str, ...]:
        if self._flite_voices is None:
            found: tuple[str, ...] = ()
            if self._backend in ("auto", "lib"):
                try:
                    found = _FliteLibrary.get().available
                except OSError:
                    found = ()
            if not found and self._backend in ("auto", "cli") and shutil.which(self._flite_path):
                found = _FLITE_VOICES  # the Debian binary links all of them
            self._flite_voices = found
        return self._flite_voices

    def _espeak_voice_names(self) -> tuple[str, ...]:
        if self._espeak_voices is None:
            names: list[str] = []
            exe = shutil.which(self._espeak_path)
            if exe is not None:
                try:
                    out = subprocess.run(
                        [exe, "--voices"], capture_output=True, text=True, timeout=10, check=False
                    ).stdout
                    for line in out.splitlines()[1:]:
                        parts = line.split()
                        if len(parts) >= 2 and parts[1] not in names:
                            names.append(parts[1])
                except (OSError, subprocess.SubprocessError):
                    names = []
            self._espeak_voices = tuple(names)
        return self._espeak_voices

    # rendering -------------------------------------------------------------------------
    async def render(self, text: str, voice: str | None = None) -> Int16Array:
        """Audio for ``text``: read-only int16 at 8 kHz. Raises :class:`TtsError`."""
        clean = sanitize_text(text, self.max_chars)
        v = self.resolve_voice(voice)
        if v.engine == "flite":
            clean = _ascii_for_flite(clean).strip()
        if not clean:
            return _EMPTY
        key: CacheKey = (v.engine, v.name, clean)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._produce(key, v, clean))
            self._inflight[key] = task
            task.add_done_callback(self._forget(key))
        # shield: one caller giving up (its call hung up) must not cancel the others' render.
        return await asyncio.shield(task)

    def _forget(self, key: CacheKey) -> Callable[[asyncio.Task[Int16Array]], None]:
        def done(task: asyncio.Task[Int16Array]) -> None:
            if self._inflight.get(key) is task:
                del self._inflight[key]
            if not task.cancelled():
                task.exception()  # retrieved here, so an abandoned failure is not logged as lost

        return done

    async def _produce(self, key: CacheKey, voice: Voice, text: str) -> Int16Array:
        if self.cache.directory is not None:
            stored = await asyncio.to_thread(self.cache.load, key)
            if stored is not None:
                self.cache.put(key, stored)
                return stored
        if voice.engine == "flite":
            out = await self._render_flite(text, voice.name)
        else:
            out = await self._render_espeak(text, voice.name)
        self.cache.put(key, out)
        if self.cache.directory is not None:
            await asyncio.to_thread(self.cache.save, key, out)
        return out

    def _finish(self, pcm: Int16Array, rate: int) -> Int16Array:
        out = to_8k(pcm, rate)
        if self.level_dbfs is not None:
            out = normalize_level(out, self.level_dbfs)
        return out

    async def _render_flite(self, text: str, voice: str) -> Int16Array:
        lib: _FliteLibrary | None = None
        if self._backend in ("auto", "lib"):
            try:
                lib = _FliteLibrary.get()
            except OSError as exc:
                if self._backend == "lib":
                    raise TtsError(f"libflite not loadable ({exc}): apt-get install flite") from exc
        if lib is not None and voice in lib.available:

            def work() -> Int16Array:
                pcm, rate = lib.synthesize(text, voice)
                return self._finish(pcm, rate)

            self.render_count += 1
            return await asyncio.to_thread(work)
        if self._backend == "lib":
            raise TtsError(f"flite voice {voice} is not installed: apt-get install flite")
        # /dev/stdout: flite writes the WAV header first with known sizes, so a pipe works.
        argv = [self._flite_path, "-voice", voice, "-t", text, "-o", "/dev/stdout"]
        self.render_count += 1
        data = await self._run(argv, None, "flite", "flite")
        pcm, rate = parse_wav(data)
        return await asyncio.to_thread(self._finish, pcm, rate)

    async def _render_espeak(self, text: str, voice: str) -> Int16Array:
        # Text on stdin, not argv: espeak-ng would read a leading "-" as an option.
        argv = [self._espeak_path, "-v", voice, "-b", "1", "--stdout"]
        self.render_count += 1
        data = await self._run(argv, text.encode("utf-8"), "espeak-ng", "espeak-ng")
        pcm, rate = parse_wav(data)
        return await asyncio.to_thread(self._finish, pcm, rate)

    async def _run(self, argv: list[str], stdin: bytes | None, what: str, package: str) -> bytes:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as exc:
            raise TtsError(f"{what} is not installed: apt-get install {package}") from exc
        except OSError as exc:
            raise TtsError(f"cannot run {what}: {exc}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), _SUBPROCESS_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise TtsError(f"{what} took longer than {_SUBPROCESS_TIMEOUT_S:.0f} s") from None
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.kill()
            raise
        if proc.returncode != 0 or not out:
            detail = err.decode("utf-8", "replace").strip()[:200]
            raise TtsError(f"{what} failed (exit {proc.returncode}): {detail}")
        return out
