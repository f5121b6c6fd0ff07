"""Cache of rendered prompts: an in-memory LRU bounded by bytes, plus an optional directory.

A flow plays the same prompts to thousands of callees; rendering is cheap (a few ms) but
not free, and a restart should not re-render a campaign's prompts. Entries are 8 kHz int16
arrays marked read-only, so the one array a cache hit hands out cannot be changed by a
caller (copy it to modify).

On disk an entry is ``<sha256 of the key>.s16``: raw little-endian int16 at 8 kHz,
written to a temporary name and renamed into place (readers never see half a file). The
directory is not size-bounded: a prompt is ~16 KB a second; delete the files to reset.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["CacheKey", "PromptCache"]

log = logging.getLogger(__name__)

CacheKey = tuple[str, str, str]
"""(engine, voice, sanitised text)."""

_ENTRY_OVERHEAD: Final = 200  # bytes of bookkeeping per entry, so tiny prompts still count


class PromptCache:
    """LRU of rendered prompts bounded by ``max_bytes``, optionally backed by ``directory``.

    Memory operations are for the event-loop thread; :meth:`load` and :meth:`save` touch
    the disk and belong in a worker thread.
    """

    def __init__(
        self,
        max_bytes: int = 64 << 20,
        directory: str | os.PathLike[str] | None = None,
        salt: str = "",
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory is not None else None
        self._salt = salt
        self._entries: OrderedDict[CacheKey, npt.NDArray[np.int16]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> npt.NDArray[np.int16] | None:
        """The cached array (most recently used now), or None."""
        arr = self._entries.get(key)
        if arr is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return arr

    def put(self, key: CacheKey, samples: npt.NDArray[np.int16]) -> None:
        """Store ``samples`` (made read-only) and evict the least recently used beyond the bound."""
        samples.flags.writeable = False
        size = samples.nbytes + _ENTRY_OVERHEAD
        if size > self.max_bytes:
            return  # bigger than the whole cache: keeping it would evict everything else
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.nbytes + _ENTRY_OVERHEAD
        self._entries[key] = samples
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.nbytes + _ENTRY_OVERHEAD

    def clear(self) -> None:
        """Forget the in-memory entries (the directory is left alone)."""
        self._entries.clear()
        self.bytes = 0

    # disk (call from a worker thread) -----------------------------------------------------
    def path_for(self, key: CacheKey) -> Path | None:
        """Where ``key`` lives on disk, or None without a directory."""
        if self.directory is None:
            return None
        digest = hashlib.sha256("\x1f".join((self._salt, *key)).encode()).hexdigest()
        return self.directory / f"{digest}.s16"

    def load(self, key: CacheKey) -> npt.NDArray[np.int16] | None:
        """Read ``key`` from the directory; None when absent or unreadable."""
        path = self.path_for(key)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("prompt cache: cannot read %s: %s", path, exc)
            return None
        if len(data) % 2:
            return None  # not ours
        return np.frombuffer(data, dtype="<i2").astype(np.int16)

    def save(self, key: CacheKey, samples: npt.NDArray[np.int16]) -> None:
        """Write ``key`` atomically; failures are logged, never raised (the cache is optional)."""
        path = self.path_for(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(samples.astype("<i2").tobytes())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("prompt cache: cannot write %s: %s", path, exc)
