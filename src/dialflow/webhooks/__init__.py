"""Webhooks: signed (HMAC-SHA256) delivery with retries, per-session order and SSRF protection.

- :mod:`.signing` — ``Dialflow-Signature`` (``sign``/``verify``).
- :mod:`.urls` — the SSRF guard for webhook URLs (``check_webhook_url[_async]``).
- :mod:`.transport` — the httpx transport that re-checks the address it connects to.
- :mod:`.policy` — attempt results, the retry schedule, the request body (no I/O).
- :mod:`.delivery` — :class:`WebhookDispatcher`, the retrying, ordered, resumable sender.

See docs/webhooks.md for the contract users see.
"""

from .delivery import WebhookDispatcher
from .policy import AttemptResult, encode_payload, retry_base_from_env, retry_delay
from .signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign, verify
from .urls import (
    WebhookUrlNotAllowed,
    check_webhook_url,
    check_webhook_url_async,
    classify_address,
)

__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "AttemptResult",
    "WebhookDispatcher",
    "WebhookUrlNotAllowed",
    "check_webhook_url",
    "check_webhook_url_async",
    "classify_address",
    "encode_payload",
    "retry_base_from_env",
    "retry_delay",
    "sign",
    "verify",
]
