"""RTP socket binding: even ports from the range, collisions, release on close, max_size."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from dialflow.media.rtp_socket import MAX_DATAGRAM, PortAllocator, open_rtp_socket

HOST = "127.0.0.1"


def _ignore(data: bytes, addr: object) -> None:
    pass


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


async def test_binds_even_ports_and_skips_ports_in_use() -> None:
    alloc = PortAllocator()
    squatter, taken = _squat_even_port()
    try:
        # Range [taken, taken + 4) holds two even ports; another process has the first.
        sock = await open_rtp_socket(HOST, (taken, taken + 4), _ignore, allocator=alloc)
        assert sock.port == taken + 2
        assert len(alloc) == 1
        with pytest.raises(OSError) as info:
            await open_rtp_socket(HOST, (taken, taken + 4), _ignore, allocator=alloc)
        assert info.value.errno == errno.EADDRINUSE
        await sock.close()
        assert len(alloc) == 0
        again = await open_rtp_socket(HOST, (taken, taken + 4), _ignore, allocator=alloc)
        assert again.port == taken + 2  # released on close
        await again.close()
    finally:
        squatter.close()


async def test_receives_datagrams_and_limits_read_size() -> None:
    got: list[tuple[bytes, object]] = []
    sock = await open_rtp_socket(HOST, None, lambda d, a: got.append((d, a)))
    try:
        if hasattr(sock.transport, "max_size"):  # stock asyncio loop
            assert sock.transport.max_size == MAX_DATAGRAM
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.sendto(b"hello", (HOST, sock.port))
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.005)
        assert got[0][0] == b"hello" and got[0][1][1] == raw.getsockname()[1]
        raw.close()
        rcvbuf = sock.transport.get_extra_info("socket").getsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF
        )
        assert rcvbuf > 256 * 1024  # enlarged (kernel doubles and caps the request)
    finally:
        await sock.close()
    assert sock.is_closing


def test_candidates_are_even_and_rotated() -> None:
    alloc = PortAllocator()
    c = alloc.candidates(HOST, (10001, 10011))
    assert sorted(c) == [10002, 10004, 10006, 10008, 10010]
    alloc.claim(HOST, 10004)
    assert 10004 not in alloc.candidates(HOST, (10001, 10011))
    with pytest.raises(ValueError):
        alloc.candidates(HOST, (10001, 10002))
