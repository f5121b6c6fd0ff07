"""Rate limits for what bad peers can make us do: log lines and error replies."""

from __future__ import annotations

import logging
import time


class LogRateLimiter:
    """Logs the first message of each interval at WARNING and counts the rest.

    A flood of bad packets must not flood the log (or slow the server by logging):
    at most one line per ``interval``, which says how many were suppressed.
    """

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._next = 0.0
        self._suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            self._logger.debug(msg, *args)
            return
        if self._suppressed:
            msg += " (%d similar suppressed)"
            args = (*args, self._suppressed)
        self._suppressed = 0
        self._next = now + self._interval
        self._logger.warning(msg, *args)


class TokenBucket:
    """``rate`` events per second with a burst of the same size."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._tokens = rate
        self._last = time.monotonic()

    def take(self, now: float) -> bool:
        self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
