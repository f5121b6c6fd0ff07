"""What the transaction layer reports to the transaction user (TU: dialogs, UA core).

Each event is a small immutable dataclass; drain them with
:meth:`~dialflow.sip.transaction.TransactionLayer.next_event` after every input, as with
aioquic's ``next_event()``. Events carry the transaction they concern, so the TU can
answer through it (``layer.send_response(event.server_tx, …)``) or find its own state
from ``tx.user_data``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .message import SipRequest, SipResponse
from .timers import Timer

if TYPE_CHECKING:
    from .tx_machines import (
        ClientTransaction,
        InviteServerTransaction,
        NonInviteServerTransaction,
        ServerTransaction,
        Transaction,
    )

Address = tuple[str, int]


@dataclass(frozen=True, slots=True, eq=False)
class RequestReceived:
    """A new request (not ACK, not CANCEL) created ``server_tx``; the TU must answer it.

    Retransmissions of the request never produce this event: the server transaction
    absorbs them (RFC 3261 §17.2).
    """

    request: SipRequest
    server_tx: ServerTransaction
    source: Address


@dataclass(frozen=True, slots=True, eq=False)
class AckReceived:
    """An ACK for the TU: one that matched no transaction (the ACK of a 2xx, RFC 3261
    §13.3.1.4, which belongs to the dialog), or one that reached an INVITE server
    transaction in the RFC 6026 Accepted state (§7.1: passed to the TU)."""

    request: SipRequest
    source: Address


@dataclass(frozen=True, slots=True, eq=False)
class CancelReceived:
    """A new CANCEL (RFC 3261 §9.2). The layer has already answered it through
    ``server_tx``: 200 when ``invite_tx`` (the INVITE server transaction it cancels) was
    found, 481 otherwise. If ``invite_tx`` is still Proceeding the TU should now send it
    a 487 (Request Terminated); if it already answered, nothing more is due."""

    cancel: SipRequest
    invite_tx: InviteServerTransaction | None
    server_tx: NonInviteServerTransaction
    source: Address


@dataclass(frozen=True, slots=True, eq=False)
class ResponseReceived:
    """A response for the TU from ``client_tx``: provisional and final, including 2xx
    retransmissions and 2xx from other forks while the INVITE is Accepted (RFC 6026 §8.4).
    Retransmitted non-2xx finals are absorbed (and, for INVITE, ACKed) by the transaction."""

    response: SipResponse
    client_tx: ClientTransaction


@dataclass(frozen=True, slots=True, eq=False)
class StrayResponse:
    """A response that matched no client transaction (RFC 3261 §17.1.3). A 2xx to an
    INVITE arriving after Timer M is still interesting to a dialog (it must be ACKed,
    §13.2.2.4); anything else can be dropped."""

    response: SipResponse
    source: Address


@dataclass(frozen=True, slots=True, eq=False)
class TransactionTimeout:
    """The peer never answered: Timer B or F (client), H (INVITE server, no ACK), or the
    §9.1 CANCEL guard (no final response 64*T1 after a CANCEL). ``TransactionTerminated``
    follows."""

    tx: Transaction
    timer: Timer


@dataclass(frozen=True, slots=True, eq=False)
class TransportFailed:
    """The transport could not deliver for ``tx`` (RFC 3261 §17.1.4, §17.2.4), as told by
    :meth:`~dialflow.sip.transaction.TransactionLayer.transport_error`. ``TransactionTerminated``
    follows."""

    tx: Transaction


@dataclass(frozen=True, slots=True, eq=False)
class TransactionTerminated:
    """``tx`` reached Terminated and was removed from the layer; always the last event
    about that transaction."""

    tx: Transaction


TransactionEvent = (
    RequestReceived
    | AckReceived
    | CancelReceived
    | ResponseReceived
    | StrayResponse
    | TransactionTimeout
    | TransportFailed
    | TransactionTerminated
)
