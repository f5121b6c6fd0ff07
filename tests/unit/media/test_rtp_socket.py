"""RTP sockets: even ports from the range, collisions, release on close, direct I/O."""

from __future__ import annotations

import errno
import random
import select
import socket
from typing import cast

import pytest

from dialflow.media.rtp_socket import MAX_DATAGRAM, PortAllocator, RtpSocket, open_rtp_socket

HOST = "127.0.0.1"


def _squat_even_port() -> tuple[socket.socket, int]:
    """Hold an even port p whose neighbour p + 2 is free."""
    for _ in range(50):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((HOST, 0))
        port = probe.getsockname()[1] & ~1
        probe.close()
        squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            squatter.bind((HOST, port))
            other.bind((HOST, port + 2))
        except OSError:
            squatter.close()
            continue
        finally:
            other.close()
        return squatter, port
    raise RuntimeError("no free port pair found")


def test_binds_even_ports_and_skips_ports_in_use() -> None:
    alloc = PortAllocator()
    squatter, taken = _squat_even_port()
    try:
        # Range [taken, taken + 4) holds two even ports; another process has the first.
        sock = open_rtp_socket(HOST, (taken, taken + 4), allocator=alloc)
        assert sock.port == taken + 2
        assert len(alloc) == 1
        with pytest.raises(OSError) as info:
            open_rtp_socket(HOST, (taken, taken + 4), allocator=alloc)
        assert info.value.errno == errno.EADDRINUSE
        sock.close()
        sock.close()  # idempotent
        assert len(alloc) == 0 and sock.is_closing and sock.fileno() == -1
        again = open_rtp_socket(HOST, (taken, taken + 4), allocator=alloc)
        assert again.port == taken + 2  # released on close
        again.close()
    finally:
        squatter.close()


def test_reads_without_blocking_and_enlarges_buffers() -> None:
    sock = open_rtp_socket(HOST, None)
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert sock.recvfrom() is None  # nothing queued: no exception, no wait
        raw.sendto(b"hello", (HOST, sock.port))
        raw.sendto(b"x" * (MAX_DATAGRAM + 100), (HOST, sock.port))
        got = _recv_wait(sock)
        assert got[0] == b"hello" and got[1] == (HOST, raw.getsockname()[1])
        assert len(_recv_wait(sock)[0]) == MAX_DATAGRAM  # truncated, not an error
        assert sock.recvfrom() is None
        assert sock.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) > 256 * 1024
        assert sock.sock.gettimeout() == 0.0
    finally:
        raw.close()
        sock.close()


def _recv_wait(sock: RtpSocket) -> tuple[bytes, object]:
    select.select([sock.sock], [], [], 1.0)
    got = sock.recvfrom()
    assert got is not None
    return got


class _FullSocket:
    """A socket whose send buffer is full (hard to provoke on loopback, which never queues)."""

    def __init__(self, exc: OSError) -> None:
        self.exc = exc
        self.calls = 0

    def sendto(self, data: bytes, addr: object) -> int:
        self.calls += 1
        raise self.exc

    def close(self) -> None:
        pass


def test_send_on_a_full_buffer_drops_and_counts() -> None:
    full = _FullSocket(BlockingIOError(errno.EAGAIN, "full"))
    sock = RtpSocket(HOST, 10000, cast(socket.socket, full), PortAllocator())
    for _ in range(3):
        sock.sendto(b"\0" * 172, (HOST, 9))  # does not raise
    assert full.calls == 3 and sock.send_drops == 3 and sock.errors == 0


def test_send_and_read_errors_are_counted_not_raised() -> None:
    sock = open_rtp_socket(HOST, None)
    try:
        sock.sendto(b"x", ("127.0.0.1", 0))  # port 0: EINVAL from the kernel
        assert sock.errors == 1
    finally:
        sock.close()


def test_candidates_are_even_rotated_and_lazy() -> None:
    alloc = PortAllocator(random.Random(1))
    c = list(alloc.candidates(HOST, (10001, 10011)))
    assert sorted(c) == [10002, 10004, 10006, 10008, 10010]
    starts = {next(iter(alloc.candidates(HOST, (10000, 10010)))) for _ in range(50)}
    assert len(starts) > 1  # a random start, not always the first port
    alloc.claim(HOST, 10004)
    assert 10004 not in list(alloc.candidates(HOST, (10001, 10011)))
    assert sorted(alloc.candidates(HOST, (10000, 10011))) == [10000, 10002, 10006, 10008, 10010]
    with pytest.raises(ValueError):
        alloc.candidates(HOST, (10001, 10002))  # raised at the call, not on iteration
    huge = alloc.candidates(HOST, (0, 1 << 40))  # would not fit in memory as a list
    assert next(huge) % 2 == 0
