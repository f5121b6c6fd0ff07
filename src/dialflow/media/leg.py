"""``MediaLeg``: the RTP side of one call — a socket, a sender, a receiver, playback, DTMF.

A SIP call opens a leg (binding the RTP port it puts in its SDP), starts it once the
offer/answer is done, and closes it at hangup. Between, the shared ``MediaClock`` asks
the leg for one frame every 20 ms (playback, DTMF, or silence), has it read what its
socket received (every 5 ms sub-tick, see ``dialflow.media.clock``) and hands it
decoded received audio; DTMF digits are dispatched as soon as their packet is read,
never behind audio. The leg sends and receives on its socket directly
(``dialflow.media.rtp_socket``: no event-loop callback per datagram).

Before ``start()`` nothing reads the socket; what the peer sent by then (payload
types unknown) is read and dropped at ``start()`` and counted as early packets.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from dialflow.media.clock import MediaClock
from dialflow.media.rtp_socket import (
    DEFAULT_BUFFER,
    MAX_DATAGRAM,
    PortAllocator,
    RtpSocket,
    open_rtp_socket,
)
from dialflow.media.sinks import (
    AudioFrame,
    DropOldestQueue,
    DtmfCallback,
    FrameCallback,
    Subscribers,
    Subscription,
)
from dialflow.media.sources import (
    AudioSource,
    InbandDtmf,
    Playback,
    PlaybackQueue,
    PlaybackState,
    fit_frame,
)
from dialflow.rtp.dtmf import DtmfDigit, DtmfSender, validate_digits
from dialflow.rtp.g711 import FRAME_SAMPLES, Codec, decode, silence_payload
from dialflow.rtp.jitter import JitterBuffer
from dialflow.rtp.stream import FeedResult, RtpReceiver, RtpSender

__all__ = ["LegState", "LegStats", "MediaLeg", "Playback", "PlaybackState"]

log = logging.getLogger(__name__)

#: At most this many datagrams received before ``start()`` are read and dropped there;
#: any beyond are handled as ordinary packets by the first ticks.
_EARLY_DRAIN_MAX: Final = 1000

# Module-level names for the per-datagram path (one lookup instead of two).
_monotonic: Final = time.monotonic
_ACCEPTED: Final = FeedResult.ACCEPTED
_IGNORED: Final = FeedResult.IGNORED

Samples = npt.NDArray[np.int16]
Address = Any  # what asyncio hands out: (host, port) or (host, port, flowinfo, scope_id)


class _Keep(enum.Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP


class LegState(enum.Enum):
    """Life of a leg: bound -> on the clock -> closed."""

    OPEN = "open"  # socket bound, not started (no remote yet)
    ACTIVE = "active"  # started: ticked by the clock
    FAILED = "failed"  # raised during a tick; removed from the clock, waiting for close()
    CLOSED = "closed"


@dataclass(slots=True)
class _DtmfJob:
    rfc4733: DtmfSender | None
    inband: InbandDtmf | None
    future: asyncio.Future[bool]


@dataclass(frozen=True, slots=True)
class LegStats:
    """A snapshot of a leg's RTP counters."""

    packets_sent: int
    octets_sent: int
    packets_received: int
    octets_received: int
    lost: int  # RFC 3550 §A.3 cumulative loss from sequence numbers
    late: int  # arrived after their playout time (jitter buffer)
    duplicates: int
    concealed: int  # frames delivered as silence because nothing was there to play
    # RFC 3550 §A.8 interarrival jitter, from the times packets are read (at most one
    # clock sub-tick, 5 ms, after they arrived): it includes that quantisation.
    jitter_ms: float
    remote: Address | None  # where we send (the latched address with symmetric RTP)

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly camelCase view (``remote`` as ``host:port``)."""
        return {
            "packetsSent": self.packets_sent,
            "octetsSent": self.octets_sent,
            "packetsReceived": self.packets_received,
            "octetsReceived": self.octets_received,
            "lost": self.lost,
            "late": self.late,
            "duplicates": self.duplicates,
            "concealed": self.concealed,
            "jitterMs": round(self.jitter_ms, 3),
            "remote": None if self.remote is None else f"{self.remote[0]}:{self.remote[1]}",
        }


class MediaLeg:
    """The RTP endpoint of one call, paced by a shared ``MediaClock``.

    Create with ``await MediaLeg.open(...)``; ``start`` after SDP negotiation;
    ``await close()`` at hangup (idempotent). All methods must be called from the
    event loop's thread.

    With nothing to play the leg sends G.711 silence (keeps NAT bindings open and the
    peer's jitter buffer fed). With ``symmetric_rtp`` (default), packets go to the
    address the peer's RTP actually comes from once it has been latched (RFC 4961),
    which is what makes calls through NAT work.
    """

    def __init__(
        self,
        clock: MediaClock,
        sock: RtpSocket,
        *,
        jitter_depth: int = 2,
        symmetric_rtp: bool = True,
    ) -> None:
        """Use ``MediaLeg.open``; this wires an already bound socket."""
        self.clock = clock
        self._socket = sock
        self.jitter_depth = jitter_depth
        self.symmetric_rtp = symmetric_rtp
        self.state = LegState.OPEN
        self.error: BaseException | None = None
        self._codec = Codec.PCMU
        self._silence = silence_payload(Codec.PCMU)
        self._sender: RtpSender | None = None
        self._receiver: RtpReceiver | None = None
        self._dest: Address | None = None
        self._sending = True
        self._playback = PlaybackQueue()
        self._dtmf_jobs: deque[_DtmfJob] = deque()
        self._dtmf_job: _DtmfJob | None = None
        self._frame_subs = Subscribers("frame")
        self._dtmf_subs = Subscribers("dtmf")
        self._streams: list[DropOldestQueue[Any]] = []
        self._concealed = 0
        self._early_packets = 0
        self._frame_rms = 0.0
        # The socket's own methods: one Python call less per packet on the clock task.
        self._sock_sendto: Callable[[bytes | memoryview, Address], int] = sock.sock.sendto
        self._sock_recvfrom: Callable[[int], tuple[bytes, Address]] = sock.sock.recvfrom

    @classmethod
    async def open(
        cls,
        clock: MediaClock,
        local_host: str,
        port_range: tuple[int, int] | None = (10000, 20000),
        *,
        jitter_depth: int = 2,
        symmetric_rtp: bool = True,
        allocator: PortAllocator | None = None,
        rcvbuf: int = DEFAULT_BUFFER,
        sndbuf: int = DEFAULT_BUFFER,
    ) -> MediaLeg:
        """Bind an RTP socket on ``local_host`` (an IP literal), even port from ``port_range``."""
        sock = open_rtp_socket(
            local_host,
            port_range,
            rcvbuf=rcvbuf,
            sndbuf=sndbuf,
            allocator=allocator,
        )
        return cls(clock, sock, jitter_depth=jitter_depth, symmetric_rtp=symmetric_rtp)

    def __repr__(self) -> str:
        return (
            f"<MediaLeg {self.state.value} {self.local_host}:{self.local_port}"
            f" -> {self._dest} {self._codec.name}>"
        )

    # --- properties -------------------------------------------------------------

    @property
    def local_host(self) -> str:
        """The address the RTP socket is bound to."""
        return self._socket.host

    @property
    def local_port(self) -> int:
        """The bound RTP port (even, from the configured range)."""
        return self._socket.port

    @property
    def codec(self) -> Codec:
        """The negotiated G.711 law (PCMU until started)."""
        return self._codec

    @property
    def remote(self) -> Address | None:
        """Where packets are sent now."""
        return self._dest

    @property
    def frame_rms(self) -> float:
        """RMS level (sample units) of the frame being delivered to ``on_frame`` callbacks.

        Valid inside a callback. The clock computes it for a whole sub-tick's frames in
        one numpy call, so a listener that needs the level of every frame (barge-in)
        does not pay numpy's per-call overhead once per frame itself.
        """
        return self._frame_rms

    @property
    def send_drops(self) -> int:
        """Packets dropped because the socket's send buffer was full."""
        return self._socket.send_drops

    @property
    def early_packets(self) -> int:
        """Datagrams that arrived before ``start()`` and were dropped."""
        return self._early_packets

    @property
    def sending(self) -> bool:
        """False while sending is paused (hold)."""
        return self._sending

    @property
    def playing(self) -> Playback | None:
        """The playback in progress, if any."""
        return self._playback.current

    @property
    def stats(self) -> LegStats:
        """Counters so far (zeros before ``start``)."""
        s, r = self._sender, self._receiver
        rs = r.update_stats() if r is not None else None
        js = r.jitter.stats if r is not None else None
        return LegStats(
            packets_sent=s.packets_sent if s else 0,
            octets_sent=s.octets_sent if s else 0,
            packets_received=rs.packets if rs else 0,
            octets_received=rs.octets if rs else 0,
            lost=rs.lost if rs else 0,
            late=js.late if js else 0,
            duplicates=js.duplicates if js else 0,
            concealed=self._concealed,
            jitter_ms=rs.jitter_ms if rs else 0.0,
            remote=self._dest,
        )

    # --- control ------------------------------------------------------------------

    def start(
        self,
        remote: Address,
        payload_type: int,
        dtmf_payload_type: int | None = None,
        *,
        codec: Codec | None = None,
    ) -> None:
        """Begin sending to ``remote`` and join the clock (after SDP negotiation).

        ``payload_type`` is the negotiated audio payload type; its codec is inferred
        from the static types 0 (PCMU) and 8 (PCMA) unless ``codec`` is given (for a
        dynamic type). ``dtmf_payload_type`` is the telephone-event type, or None if
        the peer did not offer it (``send_dtmf`` then sends in-band tones).
        """
        if self.state is not LegState.OPEN:
            raise RuntimeError(f"cannot start a leg that is {self.state.value}")
        self._set_codec(codec if codec is not None else Codec.from_payload_type(payload_type))
        self._sender = RtpSender(payload_type, dtmf_payload_type=dtmf_payload_type)
        self._receiver = RtpReceiver(
            payload_type, dtmf_payload_type, jitter=JitterBuffer(self.jitter_depth)
        )
        self._dest = remote
        self._drop_early()
        self.state = LegState.ACTIVE
        self.clock.register(self)

    def update_remote(
        self,
        remote: Address | None = None,
        payload_type: int | None = None,
        dtmf_payload_type: int | None | _Keep = KEEP,
        *,
        codec: Codec | None = None,
        on_hold: bool | None = None,
    ) -> None:
        """Apply a re-INVITE: new destination, codec or telephone-event type, or hold.

        A new ``remote`` also forgets the latched address, so the next packet from the
        peer latches again; an unspecified address (``0.0.0.0``/``::``, RFC 2543 hold)
        keeps the current one. ``on_hold=True`` pauses sending (the peer is sendonly or
        inactive): the RTP timestamp keeps running, playback and DTMF wait; ``False``
        resumes (the first packet carries the marker bit). Receiving never stops.
        """
        sender, receiver = self._sender, self._receiver
        if sender is None or receiver is None or self.state is not LegState.ACTIVE:
            raise RuntimeError(f"cannot update a leg that is {self.state.value}")
        if remote is not None and remote != self._dest and remote[0] not in ("0.0.0.0", "::"):
            self._dest = remote
            receiver.reset_latch()
        if payload_type is not None:
            self._set_codec(codec if codec is not None else Codec.from_payload_type(payload_type))
            sender.payload_type = payload_type
            receiver.payload_type = payload_type
        elif codec is not None:
            self._set_codec(codec)
        if dtmf_payload_type is not KEEP:
            if dtmf_payload_type is None and sender.dtmf_active:
                sender.cancel_dtmf()  # telephone-event withdrawn mid-string
                self._end_dtmf(False)
            sender.dtmf_payload_type = dtmf_payload_type
            receiver.dtmf_payload_type = dtmf_payload_type
        if on_hold is not None:
            self._sending = not on_hold

    def play(self, source: AudioSource, *, interrupt: bool = True) -> Playback:
        """Play ``source`` now (``interrupt``: stop what plays, drop the queue) or after it.

        With nothing to play the leg sends silence. ``await handle.done()`` waits for
        the end; ``handle.stop()`` stops it.
        """
        if self.state is LegState.CLOSED:
            raise RuntimeError("leg is closed")
        return self._playback.play(source, interrupt=interrupt)

    def stop_playback(self) -> None:
        """Stop the current playback and drop the queued ones (all end STOPPED)."""
        self._playback.stop_all()

    def send_dtmf(
        self,
        digits: str,
        duration_ms: int = 100,
        *,
        gap_ms: int = 50,
        pause_ms: int = 500,
        volume: int = 10,
    ) -> asyncio.Future[bool]:
        """Send a digit string (``0-9 * # A-D``, ``w`` = pause); queued after earlier strings.

        RFC 4733 events when telephone-event was negotiated, in-band tones otherwise.
        Playback is paused (not lost) while digits go out. The returned future resolves
        to True once the last packet is sent, False if the leg closed first.
        """
        sender = self._sender
        if sender is None or self.state is not LegState.ACTIVE:
            raise RuntimeError(f"cannot send DTMF on a leg that is {self.state.value}")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if sender.dtmf_payload_type is not None:
            job = _DtmfJob(
                DtmfSender(digits, duration_ms, volume=volume, gap_ms=gap_ms, pause_ms=pause_ms),
                None,
                future,
            )
        else:
            job = _DtmfJob(
                None, InbandDtmf(digits, duration_ms, gap_ms=gap_ms, pause_ms=pause_ms), future
            )
        self._dtmf_jobs.append(job)
        return future

    # --- subscriptions --------------------------------------------------------------

    def on_frame(self, callback: FrameCallback) -> Subscription:
        """Call ``callback(frame, t)`` with every received 20 ms frame once started.

        ``frame`` is 160 int16 samples (silence where nothing arrived in time) and is
        the callback's own copy; ``t`` is the loop time (monotonic seconds) at which the
        frame's tick was due. Runs on the clock's task: keep it short, never block.
        """
        return self._frame_subs.add(callback)

    def frames(self, maxsize: int = 50) -> DropOldestQueue[AudioFrame]:
        """Received frames as an async iterator (drops the oldest beyond ``maxsize``).

        Ends when the leg closes; ``close()`` it (or use ``async with``) to unsubscribe.
        """
        sub: Subscription | None = None
        queue: DropOldestQueue[AudioFrame] = DropOldestQueue(
            maxsize, on_close=lambda: self._unsubscribe_stream(sub, queue)
        )
        put = queue.put_nowait
        sub = self._frame_subs.add(lambda frame, t: put(AudioFrame(frame, t)))
        self._streams.append(queue)
        return queue

    def on_dtmf(self, callback: DtmfCallback) -> Subscription:
        """Call ``callback(digit)`` once per received DTMF event, as soon as it completes."""
        return self._dtmf_subs.add(callback)

    def dtmf(self, maxsize: int = 32) -> DropOldestQueue[DtmfDigit]:
        """Received digits as an async iterator; ends when the leg closes."""
        sub: Subscription | None = None
        queue: DropOldestQueue[DtmfDigit] = DropOldestQueue(
            maxsize, on_close=lambda: self._unsubscribe_stream(sub, queue)
        )
        sub = self._dtmf_subs.add(queue.put_nowait)
        self._streams.append(queue)
        return queue

    def inject_dtmf(self, digit: str, duration_ms: int = 0) -> None:
        """Publish a digit that arrived out of band (SIP INFO) to the DTMF subscribers."""
        if self.state is LegState.CLOSED:
            return
        self._dtmf_subs.publish(DtmfDigit(validate_digits(digit)[:1], duration_ms, 0))

    # --- shutdown -------------------------------------------------------------------

    async def close(self) -> None:
        """Leave the clock, end playbacks/DTMF/subscriptions, close the socket (idempotent)."""
        if self.state is LegState.CLOSED:
            return
        self.state = LegState.CLOSED
        self.clock.unregister(self)
        self._abandon(PlaybackState.STOPPED)
        for stream in tuple(self._streams):
            stream.close()
        self._frame_subs.clear()
        self._dtmf_subs.clear()
        self._socket.close()

    # --- clock interface (called on the clock task, once per frame) -----------------

    @property
    def clock_fd(self) -> int:
        """The RTP socket, polled by the clock every sub-tick."""
        return self._socket.fileno()

    def clock_read(self) -> None:
        """Read one received datagram (the clock saw the socket readable) and take it."""
        try:
            data, addr = self._sock_recvfrom(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            # ICMP errors (peer port closed) surface here; they are normal at call end.
            self._socket.errors += 1
            return
        receiver = self._receiver
        assert receiver is not None  # set by start(), before the clock knows the leg
        result = receiver.feed(data, addr, _monotonic())
        if result is _ACCEPTED or result is _IGNORED:
            return
        if result is FeedResult.LATCHED and self.symmetric_rtp:
            self._dest = receiver.remote
        if receiver.pending_digits:
            self._dispatch_digits(receiver)

    def clock_produce(self) -> Samples | None:
        """This frame's samples to encode; DTMF, silence and hold are handled here."""
        sender = self._sender
        assert sender is not None
        if not self._sending:
            sender.skip()
            return None
        job = self._dtmf_job
        if job is None and self._dtmf_jobs:
            job = self._begin_dtmf(sender)
        if job is not None:
            if job.rfc4733 is not None:
                packet = sender.dtmf_packet()
                if not sender.dtmf_active:
                    self._end_dtmf(True)
                if packet is None:
                    packet = sender.audio_packet(self._silence)  # inter-digit gap
                self._send(packet)
                return None
            assert job.inband is not None
            tone = job.inband.read(FRAME_SAMPLES)
            if tone is not None:
                return fit_frame(tone)
            self._end_dtmf(True)

        frame = self._playback.read_frame()
        if frame is not None:
            return frame
        self._send(sender.audio_packet(self._silence))
        return None

    def clock_send(self, packet: memoryview) -> None:
        """Write the RTP header in front of the encoded frame and send the packet."""
        sender = self._sender
        assert sender is not None
        sender.write_audio_header(packet)
        try:
            self._sock_sendto(packet, self._dest)
        except (BlockingIOError, InterruptedError):
            self._socket.send_drops += 1  # see rtp_socket: never queue real-time audio
        except OSError:
            self._socket.errors += 1

    def clock_receive(self, now: float) -> bytes | None:
        """Pop this frame from the jitter buffer; return it for batch decoding if wanted."""
        receiver = self._receiver
        assert receiver is not None
        payload = receiver.jitter.pop()
        if receiver.dtmf.pending and receiver.poll(time.monotonic()):
            self._dispatch_digits(receiver)  # an event whose end packets were all lost
        if not self._frame_subs.callbacks:
            return None
        if payload is not None and len(payload) == FRAME_SAMPLES:
            return payload
        # Concealment (loss, gap, DTMF) is silence; odd-sized frames are decoded alone.
        if payload is None:
            self._concealed += 1
            frame = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            self._frame_rms = 0.0
        else:
            frame = fit_frame(decode(payload, self._codec))
            wide = frame.astype(np.float64)
            self._frame_rms = math.sqrt(float(wide.dot(wide)) / FRAME_SAMPLES)
        self._frame_subs.publish(frame, now)
        return None

    def clock_deliver(self, frame: Samples, t: float, level: float) -> None:
        """Publish one decoded frame (RMS ``level``) to the frame subscribers."""
        self._frame_rms = level
        subs = self._frame_subs
        callbacks = subs.callbacks
        if len(callbacks) == 1:
            # One subscriber (the flow's CallIO) is the usual case, every frame of every
            # call: call it directly, without publish()'s argument packing.
            callback = callbacks[0]
            try:
                callback(frame, t)
            except Exception:
                subs.failed(callback)
        else:
            subs.publish(frame, t)

    def clock_skip(self, frames: int) -> None:
        """The clock stalled: let ``frames`` frames pass without sending."""
        if self._sender is not None:
            self._sender.skip(frames)

    def clock_failed(self, exc: BaseException) -> None:
        """The clock dropped this leg after it raised; end what is pending."""
        self.state = LegState.FAILED
        self.error = exc
        self._abandon(PlaybackState.FAILED)

    # --- internals --------------------------------------------------------------------

    def _send(self, packet: bytes) -> None:
        # Inlined rather than RtpSocket.sendto: silence (every frame of a call that is
        # not playing) and DTMF go out here, one Python call less per packet.
        try:
            self._sock_sendto(packet, self._dest)
        except (BlockingIOError, InterruptedError):
            self._socket.send_drops += 1  # see rtp_socket: never queue real-time audio
        except OSError:
            self._socket.errors += 1

    def _drop_early(self) -> None:
        """Read and drop what arrived before ``start()`` (payload types were unknown)."""
        recv = self._socket.recvfrom
        for _ in range(_EARLY_DRAIN_MAX):
            if recv() is None:
                return
            self._early_packets += 1

    def _dispatch_digits(self, receiver: RtpReceiver) -> None:
        for digit in receiver.take_digits():
            self._dtmf_subs.publish(digit)

    def _set_codec(self, codec: Codec) -> None:
        self._codec = codec
        self._silence = silence_payload(codec)

    def _begin_dtmf(self, sender: RtpSender) -> _DtmfJob:
        job = self._dtmf_jobs.popleft()
        self._dtmf_job = job
        if job.rfc4733 is not None:
            if sender.dtmf_payload_type is None:
                # telephone-event was withdrawn by a re-INVITE: fall back to tones.
                job.inband = InbandDtmf(job.rfc4733.digits)
                job.rfc4733 = None
            else:
                sender.start_dtmf(job.rfc4733)
        return job

    def _end_dtmf(self, sent: bool) -> None:
        job, self._dtmf_job = self._dtmf_job, None
        if job is not None and not job.future.done():
            job.future.set_result(sent)

    def _abandon(self, state: PlaybackState) -> None:
        self._playback.stop_all(state, self.error)
        if self._sender is not None:
            self._sender.cancel_dtmf()
        self._end_dtmf(False)
        while self._dtmf_jobs:
            job = self._dtmf_jobs.popleft()
            if not job.future.done():
                job.future.set_result(False)

    def _unsubscribe_stream(self, sub: Subscription | None, queue: DropOldestQueue[Any]) -> None:
        if sub is not None:
            sub.close()
        if queue in self._streams:
            self._streams.remove(queue)
