"""Offline speech recognition for ``gather``, ``listen`` and ``expect``: pocketsphinx off the loop.

Shape::

    recognizer = Recognizer()                      # one per process; owns the workers
    session = recognizer.session(hints=["sales", "support"])
    session.feed(frame)                            # from the media clock, every 20 ms
    ... session.speech_started / session.ended     # VAD, exact at the frame that ends it
    async for t in session.partials(): ...         # growing hypotheses (``expect``)
    transcript = await session.result()            # Transcript(text, confidence, is_final)

Where the CPU goes and why:

- ``feed`` runs on the event loop and only does the VAD (1.3 µs a frame) and buffering.
  Before speech starts nothing is decoded; a 300 ms pre-roll is kept so the first
  syllable is not lost.
- Decoding happens in worker *processes* ("lanes"), because pocketsphinx holds the GIL
  while decoding. Audio goes to a lane in batches (``batch_ms``, default 240 ms) — never
  one job per 20 ms frame — and while a batch is decoding the next one grows, so a busy
  worker gets fewer, larger jobs.
- Decoders are heavy (60–90 MB, 0.3–0.8 s to load), so each lane keeps a few
  (``decoders_per_worker``) and a session holds one only from its first speech to its
  result. When all are busy a new session waits and keeps buffering (up to the
  endpointer's ``max_speech_ms``); it catches up when a decoder frees.

Free-form decoding runs at ~0.3× real time on one core, so one worker carries about three
talking callers at once; callers who are silent cost nothing. See docs/speech.md.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import multiprocessing
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from dialflow.speech.decoding import EMPTY_FINAL, DecoderSettings, Transcript, run_op
from dialflow.speech.vad import FRAME_SAMPLES, EndpointConfig, Endpointer, EndpointState

__all__ = [
    "AsrError",
    "Recognizer",
    "RecognizerConfig",
    "RecognizerSession",
    "SessionState",
    "Transcript",
]

log = logging.getLogger(__name__)

_MAX_HINTS: Final = 500
_MAX_HINT_CHARS: Final = 200


class AsrError(Exception):
    """Recognition failed: the worker crashed, or the session was closed before its result."""


@dataclass(slots=True, frozen=True)
class RecognizerConfig:
    """How many workers, how big the batches, when an utterance ends."""

    workers: int = 1
    """Worker lanes (processes). Each decodes one batch at a time on one core."""
    decoders_per_worker: int = 3
    """Utterances a lane decodes concurrently (each holds a ~60–90 MB decoder)."""
    use_processes: bool = True
    """False runs lanes as threads: no process start-up, but decoding then holds the
    GIL and stalls the event loop (for tools, benchmarks and tests only)."""
    batch_ms: int = 240
    preroll_ms: int = 300
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    decoder: DecoderSettings = field(default_factory=DecoderSettings)


class SessionState(enum.Enum):
    """Life of a :class:`RecognizerSession`."""

    WAITING = "waiting"  # no speech yet
    SPEECH = "speech"  # talking, decoding as it comes
    DECODING = "decoding"  # input over, final result being computed
    DONE = "done"  # result (or error) available
    CLOSED = "closed"


class _Lane:
    """One worker: an executor with a single process (or thread) and its engine key."""

    __slots__ = ("active", "executor", "index", "key")

    def __init__(self, index: int, key: str) -> None:
        self.index = index
        self.key = key
        self.executor: Executor | None = None
        self.active = 0


class Recognizer:
    """Owns the recognition workers; hands out :class:`RecognizerSession` objects.

    Create it once per process, use it from one event loop, and ``await aclose()`` at
    shutdown. ``await start()`` loads a decoder in every worker ahead of the first call.
    """

    def __init__(self, config: RecognizerConfig | None = None) -> None:
        self.config = config or RecognizerConfig()
        if self.config.workers < 1 or self.config.decoders_per_worker < 1:
            raise ValueError("workers and decoders_per_worker must be >= 1")
        prefix = uuid.uuid4().hex[:8]
        self._lanes = [_Lane(i, f"{prefix}-{i}") for i in range(self.config.workers)]
        self._slots = asyncio.Semaphore(self.config.workers * self.config.decoders_per_worker)
        self._ids = itertools.count(1)
        self._background: set[asyncio.Future[Any]] = set()
        self._closed = False

    # lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every worker and load one decoder in each (0.5–1.5 s, in parallel)."""
        await asyncio.gather(*(self._call(lane, "prewarm", 0, 1) for lane in self._lanes))

    async def aclose(self) -> None:
        """Stop the workers. Sessions still decoding fail with :class:`AsrError`."""
        if self._closed:
            return
        self._closed = True
        for lane in self._lanes:
            executor, lane.executor = lane.executor, None
            if executor is None:
                continue
            # shutdown(wait=True) joins the worker: do that off the loop.
            await asyncio.to_thread(executor.shutdown, True, cancel_futures=True)
            if not self.config.use_processes:
                # Thread lanes keep their engine in this process: drop its decoders now
                # (the worker thread has exited, so nothing else touches it).
                run_op(lane.key, self.config.decoder, "close", 0, None)

    async def __aenter__(self) -> Recognizer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # public API -----------------------------------------------------------------------
    def session(
        self,
        hints: Iterable[str] | None = None,
        *,
        endpoint: EndpointConfig | None = None,
    ) -> RecognizerSession:
        """A streaming recognition of one utterance.

        ``hints``: the phrases the flow expects (``gather``'s ``speechHints``, ``expect``'s
        phrase). With hints, a phrase that was said comes back exactly as given, with
        ``Transcript.phrase`` set; anything else comes back as free-form text.
        """
        if self._closed:
            raise AsrError("recognizer is closed")
        return RecognizerSession(
            self, next(self._ids), _clean_hints(hints), endpoint or self.config.endpoint
        )

    async def recognize(
        self, samples: npt.NDArray[np.int16], hints: Iterable[str] | None = None
    ) -> Transcript:
        """Recognise one whole 8 kHz int16 buffer (no VAD: all of it is the utterance)."""
        if self._closed:
            raise AsrError("recognizer is closed")
        pcm = np.ascontiguousarray(samples, dtype=np.int16).tobytes()
        if not pcm:
            return EMPTY_FINAL
        lane = await self._acquire()
        try:
            result: Transcript = await self._call(lane, "recognize", 0, (pcm, _clean_hints(hints)))
            return result
        except AsrError:
            raise
        except Exception as exc:  # a decoder error fails this request, not the caller's call
            log.exception("recognition failed")
            raise AsrError(f"recognition failed: {exc}") from exc
        finally:
            self._release(lane)

    # lanes ------------------------------------------------------------------------------
    async def _acquire(self) -> _Lane:
        await self._slots.acquire()
        lane = min(self._lanes, key=lambda ln: ln.active)
        lane.active += 1
        return lane

    def _release(self, lane: _Lane) -> None:
        lane.active -= 1
        self._slots.release()

    def _executor(self, lane: _Lane) -> Executor:
        if self._closed:
            raise AsrError("recognizer is closed")
        if lane.executor is None:
            if self.config.use_processes:
                # spawn, not fork: the parent runs an event loop and threads.
                ctx = multiprocessing.get_context("spawn")
                lane.executor = ProcessPoolExecutor(max_workers=1, mp_context=ctx)
            else:
                lane.executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"asr-{lane.index}"
                )
        return lane.executor

    async def _call(self, lane: _Lane, op: str, sid: int, payload: Any) -> Any:
        executor = self._executor(lane)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                executor, run_op, lane.key, self.config.decoder, op, sid, payload
            )
        except BrokenProcessPool as exc:
            # A crashed worker takes its decoders and utterances with it; the next call
            # on this lane starts a fresh one.
            if lane.executor is executor:
                lane.executor = None
                executor.shutdown(wait=False, cancel_futures=True)
            log.error("speech worker %d died: %s", lane.index, exc)
            raise AsrError(f"speech worker {lane.index} died") from exc

    def _abort_later(self, lane: _Lane, sid: int) -> None:
        """Free a session's decoder in its worker without waiting for it."""
        if self._closed or lane.executor is None:
            return
        fut = asyncio.ensure_future(self._call(lane, "abort", sid, None))
        self._background.add(fut)
        fut.add_done_callback(_discard_result(self._background))


def _discard_result(owner: set[asyncio.Future[Any]]) -> Any:
    def done(fut: asyncio.Future[Any]) -> None:
        owner.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.debug("abort failed: %s", fut.exception())

    return done


def _clean_hints(hints: Iterable[str] | None) -> tuple[str, ...]:
    if hints is None:
        return ()
    if isinstance(hints, str):
        hints = [hints]
    out: list[str] = []
    for h in hints:
        if isinstance(h, str) and h.strip():
            out.append(h.strip()[:_MAX_HINT_CHARS])
        if len(out) >= _MAX_HINTS:
            break
    return tuple(out)


class RecognizerSession:
    """One utterance: VAD on the loop, decoding in a worker, partials and a final result.

    Feed 8 kHz int16 audio (any length; 160-sample frames are typical) with :meth:`feed`.
    The session ends on its own after ``end_silence_ms`` of silence following speech, or
    when :meth:`finish` says no more audio is coming (gather timeout, hang-up). Call
    :meth:`close` when abandoning it. Owns at most one task (its decoding driver).
    """

    def __init__(
        self, recognizer: Recognizer, sid: int, hints: tuple[str, ...], endpoint: EndpointConfig
    ) -> None:
        self._rec = recognizer
        self.sid = sid
        self.hints = hints
        self._ep = Endpointer(endpoint)
        cfg = recognizer.config
        self._batch = max(FRAME_SAMPLES, cfg.batch_ms * 8)
        self._preroll: deque[npt.NDArray[np.int16]] = deque(maxlen=max(1, cfg.preroll_ms // 20))
        self._carry = np.zeros(0, dtype=np.int16)
        self._pending: list[npt.NDArray[np.int16]] = []
        self._pending_n = 0
        self._input_done = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._updates: list[Transcript] = []
        self._changed = asyncio.Event()
        self._done = asyncio.Event()
        self._final: Transcript | None = None
        self._error: BaseException | None = None
        self.state = SessionState.WAITING

    # observation ----------------------------------------------------------------------
    @property
    def speech_started(self) -> bool:
        """True from the frame where the VAD found speech."""
        return self._ep.start_frame >= 0

    @property
    def ended(self) -> bool:
        """True once the utterance is over (silence after speech, length cap, or finish())."""
        return self._input_done

    @property
    def partial(self) -> Transcript | None:
        """The latest hypothesis (partial, or the final one when done)."""
        return self._updates[-1] if self._updates else None

    def __repr__(self) -> str:
        state = self.state.value
        return f"<RecognizerSession {self.sid} {state} hints={len(self.hints)} {self._ep!r}>"

    # input ----------------------------------------------------------------------------
    def feed(self, samples: npt.NDArray[np.int16]) -> None:
        """Add 8 kHz int16 audio. Cheap and non-blocking: call it from the media clock."""
        if self._input_done or self.state is SessionState.CLOSED:
            return
        # A copy: the frames are kept until decoded, and the caller may reuse its buffer.
        x = np.array(samples, dtype=np.int16).ravel()
        if self._carry.size:
            x = np.concatenate((self._carry, x))
        whole = x.size - x.size % FRAME_SAMPLES
        self._carry = x[whole:].copy()
        for start in range(0, whole, FRAME_SAMPLES):
            frame = x[start : start + FRAME_SAMPLES]
            was_waiting = self._ep.state is EndpointState.WAITING
            state = self._ep.update(frame)
            if was_waiting:
                self._preroll.append(frame)
                if state is not EndpointState.WAITING:
                    self._begin_speech()
            else:
                self._pending.append(frame)
                self._pending_n += FRAME_SAMPLES
            if state is EndpointState.ENDED:
                self._end_input()
                return
        if self._pending_n >= self._batch:
            self._wake.set()

    def finish(self) -> None:
        """No more audio: decode what there is (an empty final result if nobody spoke)."""
        if self._input_done or self.state is SessionState.CLOSED:
            return
        self._end_input()

    def close(self) -> None:
        """Abandon the session: stop decoding, free the decoder, fail pending waiters."""
        if self.state in (SessionState.CLOSED, SessionState.DONE):
            self.state = SessionState.CLOSED
            return
        self.state = SessionState.CLOSED
        self._input_done = True
        if self._task is not None:
            self._task.cancel()
        self._complete(None, AsrError("session closed"))

    # output ---------------------------------------------------------------------------
    async def result(self) -> Transcript:
        """The final transcript, once the utterance has ended and been decoded."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._final is not None
        return self._final

    async def partials(self) -> AsyncIterator[Transcript]:
        """Every new hypothesis as it is decoded, ending with the final one.

        For ``expect``: stop iterating as soon as one has ``phrase`` set.
        """
        seen = 0
        while True:
            while seen < len(self._updates):
                seen += 1
                yield self._updates[seen - 1]
            if self._done.is_set():
                if self._error is not None:
                    raise self._error
                return
            changed = self._changed
            await changed.wait()

    # internals ------------------------------------------------------------------------
    def _begin_speech(self) -> None:
        self.state = SessionState.SPEECH
        for frame in self._preroll:
            self._pending.append(frame)
            self._pending_n += frame.size
        self._preroll.clear()
        self._task = asyncio.get_running_loop().create_task(
            self._drive(), name=f"asr-session-{self.sid}"
        )

    def _end_input(self) -> None:
        self._input_done = True
        self._wake.set()
        if self._task is None:  # nobody spoke: nothing to decode
            self._complete(EMPTY_FINAL, None)
        else:
            self.state = SessionState.DECODING

    def _take(self) -> bytes | None:
        if not self._pending:
            return None
        data = np.concatenate(self._pending).tobytes()
        self._pending.clear()
        self._pending_n = 0
        return data

    def _publish(self, update: Transcript) -> None:
        self._updates.append(update)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _complete(self, final: Transcript | None, error: BaseException | None) -> None:
        if self._done.is_set():
            return
        self._final, self._error = final, error
        if final is not None:
            self._publish(final)
            if self.state is not SessionState.CLOSED:
                self.state = SessionState.DONE
        else:
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
        self._done.set()

    async def _drive(self) -> None:
        rec = self._rec
        lane = await rec._acquire()
        started = finished = False
        try:
            await rec._call(lane, "start", self.sid, self.hints)
            started = True
            last_text = ""
            while True:
                if not (self._input_done or self._pending_n >= self._batch):
                    self._wake.clear()
                    await self._wake.wait()
                chunk = self._take()
                if chunk is not None:
                    partial: Transcript = await rec._call(lane, "feed", self.sid, chunk)
                    if partial.text != last_text:
                        last_text = partial.text
                        self._publish(partial)
                if self._input_done and not self._pending:
                    break
            final: Transcript = await rec._call(lane, "finish", self.sid, None)
            finished = True
            self._complete(final, None)
        except asyncio.CancelledError:
            raise
        except AsrError as exc:
            finished = True  # the worker is gone, and the utterance with it
            self._complete(None, exc)
        except Exception as exc:  # a decoder error must end this session, not the call
            log.exception("recognition failed in session %d", self.sid)
            self._complete(None, AsrError(f"recognition failed: {exc}"))
        finally:
            if started and not finished:
                rec._abort_later(lane, self.sid)
            rec._release(lane)
