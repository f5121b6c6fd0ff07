"""Session ids: c_ + 22 characters of [A-Za-z0-9], uniform, unique."""

from __future__ import annotations

import re
import string
from collections import Counter

from dialflow.calls.session import new_session_id


def test_format_and_uniqueness() -> None:
    ids = [new_session_id() for _ in range(2000)]
    assert all(re.fullmatch(r"c_[A-Za-z0-9]{22}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_every_character_is_used_about_equally() -> None:
    counts = Counter("".join(new_session_id()[2:] for _ in range(3000)))
    assert set(counts) == set(string.ascii_letters + string.digits)
    expected = 3000 * 22 / 62  # ~1065 each; a modulo bias would show as ±25 %
    assert all(0.8 * expected < n < 1.2 * expected for n in counts.values())
