"""Text normalisation and phone-level matching for the recognizer.

Why phones: a free-form hypothesis of our own prompts over G.711 is usually right "by ear"
but wrong by spelling ("pressed to for support" for "press two for support", "they yes
or no" for "say yes or no"). Comparing pronunciations (ARPAbet phone strings from the
recognizer's dictionary) instead of words tells a near-homophone from a different sentence:
on the measured set, phrases that were said differ from the free-form hypothesis by at most
15 % of their phones, sentences that were not said by 80 % or more (docs/speech.md).

Everything here is pure Python on short sequences (a phrase is 5–40 phones), fast enough to
run on every partial hypothesis.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

__all__ = [
    "edit_distance",
    "normalize_words",
    "number_to_words",
    "phone_error_rate",
    "substring_distance",
    "word_error_rate",
]

_ONES: Final = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS: Final = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES: Final = ((1_000_000_000, "billion"), (1_000_000, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR: Final = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_TOKEN_RE: Final = re.compile(r"[a-z0-9']+(?:\.[0-9]+)?")
_ORDINAL_RE: Final = re.compile(r"^([0-9]+)(st|nd|rd|th)$")
_MAX_NUMBER: Final = 999_999_999_999


def number_to_words(n: int) -> str:
    """English cardinal for ``0 <= n < 10**12``.

    42 -> "forty two", 1905 -> "one thousand nine hundred five".
    """
    if n < 0 or n > _MAX_NUMBER:
        raise ValueError(f"number out of range: {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        head = _ONES[hundreds] + " hundred"
        return head if rest == 0 else head + " " + number_to_words(rest)
    for value, name in _SCALES:
        if n >= value:
            count, rest = divmod(n, value)
            words = number_to_words(count) + " " + name
            return words if rest == 0 else words + " " + number_to_words(rest)
    raise AssertionError("unreachable")  # pragma: no cover


def _ordinal(cardinal: str) -> str:
    *head, last = cardinal.split()
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def _number_token(token: str) -> list[str]:
    if "." in token:  # 4.5 -> four point five
        whole, frac = token.split(".", 1)
        return [*_number_token(whole), "point", *(_ONES[int(d)] for d in frac)]
    if len(token) > 1 and token.startswith("0") or len(token) > 12:
        return [_ONES[int(d)] for d in token]  # codes and phone numbers: digit by digit
    return number_to_words(int(token)).split()


def normalize_words(text: str) -> list[str]:
    """Lower-case words as the recognizer spells them: punctuation dropped, numbers in words.

    "Press 1 for Sales!" -> ["press", "one", "for", "sales"]; "March 3rd" -> ["march", "third"];
    "4.5" -> ["four", "point", "five"]; "007" -> ["zero", "zero", "seven"].
    """
    words: list[str] = []
    for token in _TOKEN_RE.findall(text.lower().replace("-", " ")):
        token = token.strip("'")
        if not token:
            continue
        if m := _ORDINAL_RE.match(token):
            words.extend(_ordinal(" ".join(_number_token(m.group(1)))).split())
        elif token[0].isdigit() and token.replace(".", "").isdigit():
            words.extend(_number_token(token))
        else:
            words.extend(w for w in re.split(r"(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])", token))
    return words


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences (substitution, insertion, deletion = 1)."""
    if not ref:
        return len(hyp)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diag, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            cur = row[j]
            row[j] = min(cur + 1, row[j - 1] + 1, diag + (r != h))
            diag = cur
    return row[-1]


def substring_distance(
    needle: Sequence[str], hay: Sequence[str], boundaries: Sequence[int] | None = None
) -> int:
    """Fewest edits turning ``needle`` into some contiguous part of ``hay``.

    Semi-global alignment: skipping ``hay`` before and after the match is free, so
    "sales" is found in "i want sales please" at distance 0. With ``boundaries`` (the
    positions in ``hay`` where words start or end, 0 and ``len(hay)`` included) the match
    must begin and end on one of them, so "no" is not found inside "nobody".
    """
    if not needle:
        return 0
    n = len(hay)
    allowed = set(range(n + 1)) if boundaries is None else set(boundaries)
    big = len(needle) + n + 1
    # row[j]: cost of aligning the needle so far with a part of hay ending at j.
    row = [0 if j in allowed else big for j in range(n + 1)]
    for j in range(1, n + 1):  # a start off a boundary pays for the hay it skips into
        row[j] = min(row[j], row[j - 1] + 1)
    for i, r in enumerate(needle, 1):
        diag, row[0] = row[0], i
        for j, h in enumerate(hay, 1):
            cur = row[j]
            row[j] = min(cur + 1, row[j - 1] + 1, diag + (r != h))
            diag = cur
    return min(row[j] for j in allowed if 0 <= j <= n)


def phone_error_rate(ref: Sequence[str], hyp: Sequence[str]) -> float:
    """Edit distance over the reference length (0 = same pronunciation; may exceed 1)."""
    return edit_distance(ref, hyp) / max(1, len(ref))


def word_error_rate(ref: str | Sequence[str], hyp: str | Sequence[str]) -> float:
    """WER of ``hyp`` against ``ref``; strings are normalised with :func:`normalize_words`."""
    r = normalize_words(ref) if isinstance(ref, str) else list(ref)
    h = normalize_words(hyp) if isinstance(hyp, str) else list(hyp)
    return edit_distance(r, h) / max(1, len(r))
