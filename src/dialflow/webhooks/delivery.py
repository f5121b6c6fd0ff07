"""The webhook dispatcher: signed POSTs with retries, in order per session, resumable.

Deliveries live in the store (:class:`~dialflow.store.models.WebhookDelivery`); this
module only moves them along. One loop task asks the store for due deliveries (at most
one per session: its lowest-seq pending one), sends them concurrently, records every
attempt, and sleeps until the next one is due or :meth:`WebhookDispatcher.wake` is called
(:meth:`~WebhookDispatcher.enqueue` does, so a new event goes out within milliseconds).

Semantics (docs/webhooks.md has the user-facing version):

- **At least once.** A delivery is marked delivered only after a 2xx was received *and*
  the attempt was recorded. A crash or a :meth:`~WebhookDispatcher.stop` during a send
  leaves it pending, so the receiver may see an event twice; ``Dialflow-Event-Id``
  identifies duplicates. The attempt row is written before the delivery is updated: a
  crash between the two repeats the attempt number once after the restart, never loses it.
- **In order per session.** A session's event n+1 is not sent while event n is pending
  (the store hands out only a session's head; this loop never runs two attempts of one
  session at once). An event that finally fails stops blocking: the next one goes out.
- **First attempts do not wait for the store.** A new delivery of a session that has
  nothing else pending (known in memory: this dispatcher saw every delivery of that
  session since it started, see :meth:`WebhookDispatcher.enqueue`) is sent at once,
  while its row is being written; the attempt is recorded after the row is committed.
  Anything else (a session with an earlier pending event, a session with deliveries
  left by a previous run, a full dispatcher) goes through the store-driven loop.
- **Retries.** Timeouts, connection errors, 429 and 5xx are retried: retry n waits
  ``min(base × 2^(n-1), 300) s ± 20 %``, or the ``Retry-After`` of a 429/503 (≤ 300 s);
  ``max_attempts`` in all. Other 4xx, 3xx (redirects are not followed: a redirect to
  ``http://169.254.169.254/`` would walk around the SSRF guard), a destination refused
  by the guard at send time and a missing organization secret fail at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import httpx

from dialflow import __version__
from dialflow.store.models import DeliveryState, WebhookAttempt, WebhookDelivery

from .policy import (
    RETRYABLE,
    AttemptOutcome,
    AttemptResult,
    classify_status,
    encode_payload,
    retry_base_from_env,
    retry_delay,
)
from .signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign
from .transport import GuardedTransport
from .urls import Resolver, WebhookUrlNotAllowed, parse_webhook_url

log = logging.getLogger(__name__)

# httpx logs every request at INFO with its full URL: paths and queries often carry the
# receiver's own tokens (we log the host only), and at hundreds of events per second
# that line cost as much as the attempt's own bookkeeping. Unless configured otherwise.
_httpx_log = logging.getLogger("httpx")
if _httpx_log.level == logging.NOTSET:
    _httpx_log.setLevel(logging.WARNING)

USER_AGENT = f"dialflow/{__version__}"

_MAX_DRAIN = 64 * 1024  # response bytes read (and dropped) so the connection can be reused
_MAX_ERROR_LEN = 300
_MAX_IDLE = 30.0  # re-ask the store at least this often (clock jumps, other writers)
_BLIND_POLL = 1.0  # when due work is hidden behind in-flight or blocked deliveries
_ERROR_BACKOFF = 1.0  # after a store error, so a broken database is not hammered
_LOG_EVERY = 10.0  # at most one failure line per host per this many seconds


class WebhookStore(Protocol):
    """The part of :class:`dialflow.store.base.Store` the dispatcher uses."""

    async def enqueue_webhook(self, delivery: WebhookDelivery) -> None: ...

    async def due_webhooks(self, now: datetime, limit: int) -> list[WebhookDelivery]: ...

    async def next_webhook_due(self) -> datetime | None: ...

    async def pending_webhook_sessions(self) -> set[str]: ...

    async def update_webhook(self, delivery: WebhookDelivery) -> None: ...

    async def add_webhook_attempt(self, attempt: WebhookAttempt) -> None: ...


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _unix(value: datetime) -> float:
    # The store promises aware UTC; a naive value would otherwise be read as local time.
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()


def _host_of(url: str) -> str:
    # Logs name the host only: paths and queries often carry the receiver's own tokens.
    try:
        return httpx.URL(url).host or "?"
    except (httpx.InvalidURL, ValueError):
        return "?"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= _MAX_ERROR_LEN else text[: _MAX_ERROR_LEN - 1] + "…"


@dataclass(slots=True)
class _InFlight:
    delivery: WebhookDelivery
    recording: bool = False  # past the send: stop() lets it finish instead of cancelling


class _FailureLog:
    """One log line per host per interval, counting what it held back."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def admit(self, host: str, now: float) -> int | None:
        """None: stay quiet. Otherwise log, mentioning the returned number of held lines."""
        last = self._last.get(host)
        if last is not None and now - last < self._interval:
            self._held[host] = self._held.get(host, 0) + 1
            return None
        if len(self._last) > 10_000:  # many dead hosts: forget rather than grow
            self._last.clear()
            self._held.clear()
        self._last[host] = now
        return self._held.pop(host, 0)


class WebhookDispatcher:
    """Sends stored webhook deliveries; see the module docstring for the semantics.

    ``secret_for(org_id)`` returns the organization's current signing secret (looked up per
    attempt, so a rotation applies to retries). ``metrics(result)`` is called once per
    attempt with an :class:`AttemptResult` value. ``clock`` is wall-clock unix seconds
    (injectable for tests); ``rng`` drives the jitter; ``resolver`` and ``verify`` are
    passed to the guarded HTTP transport (tests: a fake DNS, a private CA).
    ``retry_base`` None reads ``DIALFLOW_WEBHOOK_RETRY_BASE`` (default 2 s).
    """

    def __init__(
        self,
        store: WebhookStore,
        *,
        secret_for: Callable[[str], Awaitable[str | None]],
        allow_private: bool,
        retry_base: float | None = None,
        max_attempts: int = 10,
        timeout: float = 5.0,
        concurrency: int = 50,
        metrics: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        if max_attempts < 1 or concurrency < 1 or timeout <= 0:
            raise ValueError("max_attempts and concurrency must be >= 1, timeout > 0")
        self._store = store
        self._secret_for = secret_for
        self._allow_private = allow_private
        self._retry_base = retry_base_from_env() if retry_base is None else retry_base
        if not self._retry_base > 0:
            raise ValueError("retry_base must be > 0")
        self._max_attempts = max_attempts
        self._timeout = timeout
        self._concurrency = concurrency
        self._metrics = metrics
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._resolver = resolver
        self._verify = verify

        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._stopping = False
        self._inflight: dict[asyncio.Task[None], _InFlight] = {}
        self._busy_sessions: set[str] = set()
        self._finished: list[str] = []  # sessions whose attempt ended; freed by the loop
        self._retry_at: list[float] = []  # heap of retry times this process scheduled
        self._task_failed = False
        self._failure_log = _FailureLog(_LOG_EVERY)
        # Sessions whose every delivery this dispatcher has seen since start(), with the
        # number of those still pending; the others may have pending rows it never saw.
        self._pending_of: dict[str, int] = {}
        self._unknown_sessions: set[str] = set()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<WebhookDispatcher {state} in_flight={len(self._inflight)}>"

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def in_flight(self) -> int:
        """Attempts being sent right now."""
        return len(self._inflight)

    # -- life cycle

    async def start(self) -> None:
        """Start the loop; deliveries left pending by an earlier run are resumed."""
        if self._loop_task is not None:
            raise RuntimeError("dispatcher already started")
        limits = httpx.Limits(
            max_connections=self._concurrency,
            max_keepalive_connections=self._concurrency,
            keepalive_expiry=30.0,
        )
        transport = GuardedTransport(
            allow_private=self._allow_private,
            resolver=self._resolver,
            verify=self._verify,
            limits=limits,
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )
        self._stopping = False
        self._pending_of.clear()
        # (A union: deliveries enqueued before start() may not be committed yet.)
        self._unknown_sessions |= await self._store.pending_webhook_sessions()
        self._loop_task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self, grace: float = 1.0) -> None:
        """Stop the loop; give in-flight attempts ``grace`` seconds, then cancel their sends.

        A cancelled send records nothing and leaves its delivery pending: the next start
        sends it again (at-least-once). An attempt already past its send is always allowed
        to finish recording.
        """
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
            self._loop_task = None
        if self._inflight:
            _, pending = await asyncio.wait(list(self._inflight), timeout=grace)
            for task in pending:
                if not self._inflight[task].recording:
                    task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def wake(self) -> None:
        """Look for due work now (enqueue calls this; so can a cross-node notification)."""
        self._wake.set()

    async def enqueue(self, delivery: WebhookDelivery) -> None:
        """Store a new delivery (due now unless it has a time) and send it or wake the loop.

        Call it in each session's event order: whether a delivery may be sent at once is
        decided synchronously, before the first await, from the deliveries enqueued
        before it. It returns once the row is stored (the send may still be under way).
        """
        now = self._clock()
        if delivery.created_at is None:
            delivery.created_at = _utc(now)
        # (Compared as given: a datetime round trip of ``now`` may land 1 µs after it.)
        due_now = delivery.next_attempt_at is None or _unix(delivery.next_attempt_at) <= now
        if delivery.next_attempt_at is None:
            delivery.next_attempt_at = delivery.created_at
        session_id = delivery.session_id
        tracked = self.running and not self._stopping and session_id not in self._unknown_sessions
        if not tracked:
            # Not running yet (e.g. crash recovery before start): its session may have
            # pending rows this dispatcher will only learn about from the store.
            self._unknown_sessions.add(session_id)
            await self._store.enqueue_webhook(delivery)
            self._wake.set()
            return
        ahead = self._pending_of.get(session_id, 0)
        self._pending_of[session_id] = ahead + 1
        stored: asyncio.Future[None] | None = None
        if (
            ahead == 0
            and session_id not in self._busy_sessions
            and len(self._busy_sessions) < self._concurrency
            and due_now
        ):
            stored = asyncio.get_running_loop().create_future()
            self._launch(delivery, stored)
        try:
            await self._store.enqueue_webhook(delivery)
        except BaseException as exc:
            # The row may exist after all (a cancelled wait does not undo the write): from
            # now on only the store knows what is pending for this session.
            self._pending_of.pop(session_id, None)
            self._unknown_sessions.add(session_id)
            if stored is not None:
                if isinstance(exc, asyncio.CancelledError):
                    stored.cancel()
                else:
                    stored.set_exception(exc)
                    stored.exception()  # the attempt sees it; do not log it twice
            raise
        if stored is not None:
            stored.set_result(None)
        else:
            self._wake.set()

    def _settled(self, session_id: str) -> None:
        """One delivery of a tracked session is no longer pending (delivered or failed)."""
        left = self._pending_of.get(session_id)
        if left is None:
            return
        if left <= 1:
            del self._pending_of[session_id]
        else:
            self._pending_of[session_id] = left - 1

    # -- the loop

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            for session_id in self._finished:
                self._busy_sessions.discard(session_id)
            self._finished.clear()
            if self._stopping:
                return
            if self._task_failed:
                self._task_failed = False
                await self._sleep(_ERROR_BACKOFF)
                continue
            try:
                timeout = await self._pass()
            except Exception:
                log.exception("webhook dispatcher: store error; retrying in %.0f s", _ERROR_BACKOFF)
                timeout = _ERROR_BACKOFF
            await self._sleep(timeout)

    async def _pass(self) -> float | None:
        """Start what is due; return how long to sleep (None: until woken)."""
        capacity = self._concurrency - len(self._busy_sessions)
        if capacity <= 0:
            return None  # a finishing attempt wakes the loop
        now = self._clock()
        # Busy sessions' heads are still pending in the store and come back here: ask for
        # enough rows that they cannot crowd out `capacity` startable ones.
        limit = capacity + len(self._busy_sessions)
        for delivery in await self._store.due_webhooks(_utc(now), limit):
            if capacity == 0:
                return None
            if delivery.session_id in self._busy_sessions or self._stopping:
                continue
            self._launch(delivery)
            capacity -= 1
        if capacity == 0:
            return None
        if not self._inflight:
            next_due = await self._store.next_webhook_due()
            if next_due is None:
                return _MAX_IDLE
            delay = _unix(next_due) - self._clock()
            if delay > 0:
                return min(delay, _MAX_IDLE)
        # Attempts are in flight: each completion wakes the loop, which then asks for due
        # work anyway, so the store is not asked for its next time on every pass (under
        # load that query would run once per event). Retry times this process scheduled
        # are known exactly; others (left by a previous run, or due-looking deliveries
        # that are in flight or blocked behind their session's head) are polled gently.
        now = self._clock()
        heap = self._retries_ahead(now)
        return min(heap[0] - now, _BLIND_POLL) if heap else _BLIND_POLL

    def _retries_ahead(self, now: float) -> list[float]:
        """The heap of scheduled retry times, with those already past dropped."""
        heap = self._retry_at
        while heap and heap[0] <= now:
            heapq.heappop(heap)
        return heap

    async def _sleep(self, timeout: float | None) -> None:
        if timeout is not None and timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    def _launch(
        self, delivery: WebhookDelivery, stored: asyncio.Future[None] | None = None
    ) -> None:
        task = asyncio.create_task(self._attempt(delivery, stored), name=f"webhook-{delivery.id}")
        self._inflight[task] = _InFlight(delivery)
        self._busy_sessions.add(delivery.session_id)
        task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        info = self._inflight.pop(task)
        # The loop frees the session, not this callback: a due list fetched before this
        # attempt updated the store may still hold this (now stale) delivery.
        self._finished.append(info.delivery.session_id)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error(
                "webhook attempt for %s crashed; it stays pending",
                info.delivery.id,
                exc_info=exc,
            )
            self._task_failed = True
        self._wake.set()

    # -- one attempt

    async def _attempt(
        self, delivery: WebhookDelivery, stored: asyncio.Future[None] | None = None
    ) -> None:
        """Send once and record it. ``stored``: the delivery's row is still being written
        (a first attempt sent at once); the attempt is recorded only after it is."""
        task = asyncio.current_task()
        started_wall = self._clock()
        started = time.monotonic()
        outcome = await self._send(delivery, started_wall)
        duration_ms = round((time.monotonic() - started) * 1000)
        if stored is not None:
            try:
                await stored
            except Exception:
                # enqueue() raised to its caller already; with no row there is nothing
                # to record the attempt against.
                return
        if task is not None and task in self._inflight:
            self._inflight[task].recording = True
        await self._record(delivery, outcome, started_wall, duration_ms)

    async def _send(self, delivery: WebhookDelivery, now: float) -> AttemptOutcome:
        try:
            parse_webhook_url(delivery.url)  # syntax rules may have tightened since enqueue
        except WebhookUrlNotAllowed as exc:
            return AttemptOutcome(AttemptResult.REFUSED, error=f"refused: {exc.reason}")
        secret = await self._secret_for(delivery.org_id)
        if not secret:
            # Never send unsigned (or empty-key signed) events: receivers could not tell
            # them from forgeries.
            return AttemptOutcome(
                AttemptResult.NO_SECRET, error="organization has no webhook secret"
            )
        try:
            body = encode_payload(delivery.payload)
        except (TypeError, ValueError) as exc:
            return AttemptOutcome(AttemptResult.INVALID_PAYLOAD, error=f"payload: {_short(exc)}")
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: delivery.id,
            SIGNATURE_HEADER: sign(secret, body, int(now)),
        }
        return await self._post(delivery.url, body, headers)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptOutcome:
        assert self._client is not None
        status: int | None = None
        retry_after: str | None = None
        try:
            # One deadline for everything (DNS, connect, send, answer): httpx's own
            # timeouts are per operation, so a receiver trickling bytes could outlast them.
            async with asyncio.timeout(self._timeout):
                async with self._client.stream("POST", url, content=body, headers=headers) as r:
                    status = r.status_code
                    retry_after = r.headers.get("Retry-After")
                    # Bodies are not kept; read a little so the connection can be reused.
                    drained = 0
                    async for chunk in r.aiter_raw():
                        drained += len(chunk)
                        if drained > _MAX_DRAIN:
                            break
        except WebhookUrlNotAllowed as exc:
            return AttemptOutcome(AttemptResult.REFUSED, error=f"refused at send: {exc.reason}")
        except (TimeoutError, httpx.TimeoutException):
            if status is None:
                return AttemptOutcome(
                    AttemptResult.TIMEOUT, error=f"no answer within {self._timeout} s"
                )
        except httpx.HTTPError as exc:
            if status is None:
                error = f"{type(exc).__name__}: {_short(exc)}"
                return AttemptOutcome(AttemptResult.CONNECTION_ERROR, error=error)
        except Exception as exc:
            # Not an error httpx knows (a bug, an exotic OS error): record it and follow the
            # retry schedule, so one odd delivery cannot loop forever unrecorded.
            log.exception("webhook send to %s failed unexpectedly", _host_of(url))
            if status is None:
                error = f"{type(exc).__name__}: {_short(exc)}"
                return AttemptOutcome(AttemptResult.CONNECTION_ERROR, error=error)
        # An error after the status line arrived (while draining) does not change the answer.
        assert status is not None
        return classify_status(status, retry_after, self._clock())

    async def _record(
        self, delivery: WebhookDelivery, outcome: AttemptOutcome, started: float, duration_ms: int
    ) -> None:
        number = delivery.attempts + 1
        will_retry = outcome.result in RETRYABLE and number < self._max_attempts
        now = self._clock()
        await self._store.add_webhook_attempt(
            WebhookAttempt(
                delivery_id=delivery.id,
                session_id=delivery.session_id,
                attempt=number,
                at=_utc(started),
                url=delivery.url,
                event_type=delivery.event_type,
                status_code=outcome.status,
                error=outcome.error,
                duration_ms=duration_ms,
                will_retry=will_retry,
            )
        )
        delivery.attempts = number
        delivery.last_status = outcome.status
        delivery.last_error = outcome.error
        if outcome.result is AttemptResult.SUCCESS:
            delivery.state = DeliveryState.DELIVERED
            delivery.next_attempt_at = None
        elif will_retry:
            delay = outcome.retry_after
            if delay is None:
                delay = retry_delay(number, self._retry_base, self._rng.random())
            delivery.next_attempt_at = _utc(now + delay)
            heapq.heappush(self._retries_ahead(now), now + delay)
        else:
            delivery.state = DeliveryState.FAILED
            delivery.next_attempt_at = None
        await self._store.update_webhook(delivery)
        if delivery.state is not DeliveryState.PENDING:
            self._settled(delivery.session_id)
        self._count(outcome.result)
        self._log(delivery, outcome, number, will_retry, duration_ms, now)

    def _count(self, result: AttemptResult) -> None:
        if self._metrics is None:
            return
        try:
            self._metrics(result.value)
        except Exception:  # a metrics bug must not leave a delivery half-recorded
            log.exception("webhook metrics callback failed")

    def _log(
        self,
        delivery: WebhookDelivery,
        outcome: AttemptOutcome,
        number: int,
        will_retry: bool,
        duration_ms: int,
        now: float,
    ) -> None:
        host = _host_of(delivery.url)
        answer = outcome.status if outcome.status is not None else outcome.result.value
        if outcome.result is AttemptResult.SUCCESS:
            log.info(
                "webhook %s %s -> %s %s (attempt %d, %d ms)",
                delivery.event_type,
                delivery.id,
                host,
                answer,
                number,
                duration_ms,
            )
            return
        held = self._failure_log.admit(host, now)
        if held is None:
            return
        log.log(
            logging.INFO if will_retry else logging.WARNING,
            "webhook %s %s -> %s %s (attempt %d, %s)%s",
            delivery.event_type,
            delivery.id,
            host,
            answer,
            number,
            "will retry" if will_retry else "gave up",
            f" [{held} similar failures for this host not logged]" if held else "",
        )
