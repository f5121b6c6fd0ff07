"""Jitter buffer: reordering, loss, duplicates, late packets, wrap at 65535, resync."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dialflow.rtp.jitter import JitterBuffer
from dialflow.rtp.packet import RtpPacket

SSRC = 0x1234


def payload(i: int) -> bytes:
    return i.to_bytes(4, "big") * 40  # 160 bytes that identify frame i


def put(jb: JitterBuffer, seq: int, i: int, *, ssrc: int = SSRC, ts: int | None = None) -> bool:
    return jb.insert(seq & 0xFFFF, (i * 160 if ts is None else ts) & 0xFFFFFFFF, ssrc, payload(i))


def frame_id(p: bytes | None) -> int | None:
    return None if p is None else int.from_bytes(p[:4], "big")


def test_waits_for_target_depth_then_plays_in_order() -> None:
    jb = JitterBuffer(target_depth=2)
    put(jb, 1000, 0)
    assert jb.pop() is None  # prefilling
    put(jb, 1001, 1)
    assert frame_id(jb.pop()) == 0
    put(jb, 1002, 2)
    assert frame_id(jb.pop()) == 1
    assert frame_id(jb.pop()) == 2
    assert jb.stats.played == 3 and jb.stats.lost == 0


def test_put_parsed_packet() -> None:
    jb = JitterBuffer(target_depth=1)
    assert jb.put(RtpPacket(0, 7, 0, SSRC, payload(7)))
    assert frame_id(jb.pop()) == 7


def test_reordering_within_depth_is_repaired() -> None:
    jb = JitterBuffer(target_depth=3)
    out = []
    for i in (0, 2, 1, 3, 5, 4, 6, 7):
        put(jb, 500 + i, i)
        out.append(frame_id(jb.pop()))
    out += [frame_id(jb.pop()) for _ in range(6)]
    assert [x for x in out if x is not None] == list(range(8))
    assert jb.stats.lost == 0 and jb.stats.late == 0


def test_reordered_packet_before_playout_moves_start_back() -> None:
    jb = JitterBuffer(target_depth=2)
    put(jb, 11, 11)
    put(jb, 10, 10)  # arrived second but is earlier: playout starts at 10
    assert [frame_id(jb.pop()) for _ in range(2)] == [10, 11]


def test_loss_is_concealed_and_counted() -> None:
    jb = JitterBuffer(target_depth=2)
    for i in (0, 1, 3, 4):
        put(jb, i, i)
    assert [frame_id(jb.pop()) for _ in range(5)] == [0, 1, None, 3, 4]
    assert jb.stats.lost == 1 and jb.stats.played == 4


def test_duplicates_queued_and_already_played() -> None:
    jb = JitterBuffer(target_depth=2)
    put(jb, 0, 0)
    put(jb, 1, 1)
    assert not put(jb, 1, 1)  # queued twice
    assert frame_id(jb.pop()) == 0
    assert not put(jb, 0, 0)  # played already
    assert jb.stats.duplicates == 2 and jb.stats.late == 0


def test_late_packet_is_dropped() -> None:
    jb = JitterBuffer(target_depth=2)
    for i in (0, 1, 3):
        put(jb, i, i)
    assert [frame_id(jb.pop()) for _ in range(3)] == [0, 1, None]
    assert not put(jb, 2, 2)  # its turn has passed
    assert jb.stats.late == 1 and jb.stats.lost == 1
    assert frame_id(jb.pop()) == 3


def test_wrap_at_65535() -> None:
    jb = JitterBuffer(target_depth=2)
    seqs = [65533, 65535, 65534, 0, 2, 1, 3]
    for i, s in enumerate(seqs):
        put(jb, s, (s - 65533) & 0xFFFF)
        if i >= 1:
            jb.pop()
    rest = [frame_id(jb.pop()) for _ in range(8)]
    assert jb.stats.played == 7 and jb.stats.lost == 0 and jb.stats.late == 0
    assert [x for x in rest if x is not None][-1] == 6


def test_ssrc_change_resyncs() -> None:
    jb = JitterBuffer(target_depth=1)
    put(jb, 100, 1)
    assert frame_id(jb.pop()) == 1
    put(jb, 7, 2, ssrc=999)  # new source, unrelated sequence numbers
    assert frame_id(jb.pop()) == 2
    assert jb.stats.resyncs == 1 and jb.stats.lost == 0 and jb.stats.late == 0


def test_big_sequence_jump_resyncs() -> None:
    jb = JitterBuffer(target_depth=1, max_jump=50)
    put(jb, 100, 1)
    jb.pop()
    put(jb, 5000, 2)
    assert frame_id(jb.pop()) == 2
    assert jb.stats.resyncs == 1 and jb.stats.lost == 0


def test_timestamp_running_backwards_resyncs_but_forward_jump_does_not() -> None:
    jb = JitterBuffer(target_depth=1)
    put(jb, 10, 1, ts=800_000)
    jb.pop()
    put(jb, 11, 2, ts=900_000)  # silence suppression: timestamp leaps forward
    assert jb.stats.resyncs == 0
    assert frame_id(jb.pop()) == 2
    put(jb, 12, 3, ts=1000)  # timeline restarted
    assert jb.stats.resyncs == 1
    assert frame_id(jb.pop()) == 3


def test_underrun_rebuffers_to_target_depth() -> None:
    jb = JitterBuffer(target_depth=2)
    put(jb, 0, 0)
    put(jb, 1, 1)
    assert [frame_id(jb.pop()) for _ in range(2)] == [0, 1]
    assert jb.pop() is None  # nothing there: underrun, not loss
    assert jb.stats.underruns == 1 and jb.stats.lost == 0
    put(jb, 2, 2)
    assert jb.pop() is None  # rebuffering: one frame is below target
    put(jb, 3, 3)
    assert [frame_id(jb.pop()) for _ in range(2)] == [2, 3]
    assert jb.stats.lost == 0


def test_overflow_drops_oldest_down_to_target() -> None:
    jb = JitterBuffer(target_depth=2, max_depth=5)
    for i in range(8):
        put(jb, i, i)
    # span 8 > 5: drop 0..5, keep the newest two.
    assert frame_id(jb.pop()) == 6
    assert jb.stats.dropped == 6
    assert frame_id(jb.pop()) == 7


def test_persistent_surplus_shrinks_latency() -> None:
    jb = JitterBuffer(target_depth=2, max_depth=10, shrink_after=5)
    for i in range(5):
        put(jb, i, i)
    got = [frame_id(jb.pop())]
    n = 5
    while jb.stats.dropped == 0 and n < 100:
        put(jb, n, n)
        got.append(frame_id(jb.pop()))
        n += 1
    assert jb.stats.dropped == 1
    assert jb.depth <= 4


def test_no_audio_placeholder_is_not_loss() -> None:
    jb = JitterBuffer(target_depth=1)
    put(jb, 0, 0)
    jb.insert(1, 160, SSRC, None)  # e.g. a telephone-event packet
    put(jb, 2, 2)
    assert [frame_id(jb.pop()) for _ in range(3)] == [0, None, 2]
    assert jb.stats.lost == 0


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 0xFFFF),
    n=st.integers(1, 120),
    data=st.data(),
)
def test_property_bounded_delay_plays_everything_in_order(
    start: int, n: int, data: st.DataObject
) -> None:
    """Packet i is sent at tick i and arrives at tick i + delay (delay <= D), maybe twice.

    With target depth D + 1 nothing is lost or late, every frame plays exactly once and in
    order, whatever the starting sequence number (wrap included).
    """
    max_delay = data.draw(st.integers(0, 3))
    delays = data.draw(st.lists(st.integers(0, max_delay), min_size=n, max_size=n))
    dups = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    arrivals: dict[int, list[int]] = {}
    for i, d in enumerate(delays):
        arrivals.setdefault(i + d, []).append(i)
        if dups[i]:
            arrivals.setdefault(i + max_delay, []).append(i)
    jb = JitterBuffer(target_depth=max_delay + 1, max_depth=max_delay + 8)
    played: list[int] = []
    for tick in range(n + max_delay + 10):
        for i in arrivals.get(tick, []):
            put(jb, start + i, i)
        got = frame_id(jb.pop())
        if got is not None:
            played.append(got)
    assert played == list(range(n))
    assert jb.stats.lost == 0 and jb.stats.late == 0


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 0xFFFF),
    order=st.permutations(list(range(40))),
    drop=st.sets(st.integers(0, 39)),
)
def test_property_arbitrary_arrival_never_repeats_or_reorders(
    start: int, order: list[int], drop: set[int]
) -> None:
    jb = JitterBuffer(target_depth=3)
    played: list[int] = []
    for k, i in enumerate(order):
        if i not in drop:
            put(jb, start + i, i)
            put(jb, start + i, i)  # always a duplicate too
        if k % 2:
            got = frame_id(jb.pop())
            if got is not None:
                played.append(got)
    for _ in range(60):
        got = frame_id(jb.pop())
        if got is not None:
            played.append(got)
    assert played == sorted(set(played))
    assert not set(played) & drop
    s = jb.stats
    assert s.played == len(played)
    assert s.received <= 40 - len(drop)
    assert s.played + s.dropped + len(jb._buf) == s.received
