"""RFC 3261 §17 transaction timers (Table 4 of §A), with the RFC 6026 additions.

Every timer derives from three base values, T1, T2 and T4, held in one frozen
:class:`TimerConfig`; nothing in the stack hard-codes a duration. Reliable transports
(TCP, TLS) switch the retransmission timers off and set the "wait" timers (D, I, J, K)
to zero, as §17 asks, so a reliable transaction ends as soon as it completes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Timer(enum.Enum):
    """The names of the transaction timers (RFC 3261 Table 4, RFC 6026 §8.4)."""

    A = "A"  # INVITE client: request retransmit (UDP only)
    B = "B"  # INVITE client: transaction timeout in Calling
    D = "D"  # INVITE client: wait for response retransmits in Completed
    E = "E"  # non-INVITE client: request retransmit (UDP only)
    F = "F"  # non-INVITE client: transaction timeout
    K = "K"  # non-INVITE client: wait for response retransmits
    G = "G"  # INVITE server: final response retransmit (UDP only)
    H = "H"  # INVITE server: wait for ACK
    I = "I"  # noqa: E741  INVITE server: wait for ACK retransmits in Confirmed
    J = "J"  # non-INVITE server: wait for request retransmits
    L = "L"  # INVITE server (RFC 6026): wait for INVITE retransmits in Accepted
    M = "M"  # INVITE client (RFC 6026): wait for 2xx retransmits in Accepted
    # RFC 3261 §17.2.1: send 100 Trying unless the TU answers within 200 ms.
    TRYING = "Trying"
    # RFC 3261 §9.1: once a CANCEL is sent, give the INVITE 64*T1 to end.
    CANCEL = "Cancel"

    @property
    def is_timeout(self) -> bool:
        """Timers whose firing means the peer never answered (reported to the TU)."""
        return self in _TIMEOUTS


_TIMEOUTS = frozenset({Timer.B, Timer.F, Timer.H, Timer.CANCEL})


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """The base timer values (RFC 3261 §17.1.1.1) and the durations derived from them.

    ``t1`` is the RTT estimate (500 ms default), ``t2`` the cap on non-INVITE and 2xx
    retransmit intervals (4 s), ``t4`` the time a message may linger in the network (5 s).
    ``timer_d`` is the Completed wait of an INVITE client on UDP (RFC 3261 Table 4: at least
    32 s). ``trying_delay`` is the §17.2.1 200 ms after which an INVITE server transaction
    sends 100 Trying on its own.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d_udp: float = 32.0
    trying_delay: float = 0.2

    def __post_init__(self) -> None:
        if not (0 < self.t1 <= self.t2) or self.t4 <= 0 or self.timer_d_udp < 0:
            raise ValueError(f"bad timer values {self!r}")

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, L, M and J on UDP (RFC 3261 Table 4, RFC 6026 §8.4)."""
        return 64 * self.t1

    def timer_d(self, reliable: bool) -> float:
        """Timer D: >32 s on UDP to absorb final response retransmits, 0 on TCP (§17.1.1.2)."""
        return 0.0 if reliable else self.timer_d_udp

    def timer_i(self, reliable: bool) -> float:
        """Timer I: T4 on UDP to absorb ACK retransmits, 0 on TCP (§17.2.1)."""
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        """Timer J: 64*T1 on UDP to absorb request retransmits, 0 on TCP (§17.2.2)."""
        return 0.0 if reliable else self.timeout

    def timer_k(self, reliable: bool) -> float:
        """Timer K: T4 on UDP to absorb response retransmits, 0 on TCP (§17.1.2.2)."""
        return 0.0 if reliable else self.t4

    def next_interval(self, interval: float, *, capped: bool) -> float:
        """The retransmit interval after ``interval``: doubled, and capped at T2 if asked.

        RFC 3261 §17.1.1.2: Timer A doubles without a cap (its run is cut by Timer B);
        §17.1.2.2 / §17.2.1: Timers E and G double up to T2.
        """
        doubled = interval * 2
        return min(doubled, self.t2) if capped else doubled
