"""Text normalisation and phone-sequence distances."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dialflow.speech.matching import (
    edit_distance,
    normalize_words,
    number_to_words,
    phone_error_rate,
    substring_distance,
    word_error_rate,
)

tokens = st.lists(st.sampled_from(["AA", "B", "K", "S", "T", "IY"]), max_size=12)


def test_numbers_become_words() -> None:
    assert number_to_words(0) == "zero"
    assert number_to_words(42) == "forty two"
    assert number_to_words(150) == "one hundred fifty"
    assert number_to_words(1905) == "one thousand nine hundred five"
    assert number_to_words(2_000_017) == "two million seventeen"


def test_normalize_words() -> None:
    assert normalize_words("Press 1 for Sales!") == ["press", "one", "for", "sales"]
    assert normalize_words("March 3rd, the 21st") == ["march", "third", "the", "twenty", "first"]
    assert normalize_words("4.5 stars") == ["four", "point", "five", "stars"]
    assert normalize_words("PIN 007") == ["pin", "zero", "zero", "seven"]
    assert normalize_words("don't re-enter") == ["don't", "re", "enter"]
    assert normalize_words("¡¿…!!") == []


def test_edit_and_error_rates() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert phone_error_rate(["P", "R", "EH", "S"], ["P", "R", "EH", "S", "T"]) == 0.25
    assert word_error_rate("press 1 for sales", "press one for sale") == 0.25
    assert word_error_rate("", "") == 0.0


def test_substring_distance_respects_word_boundaries() -> None:
    no = ["N", "OW"]
    nobody = ["N", "OW", "B", "AA", "D", "IY"]
    assert substring_distance(no, nobody) == 0  # anywhere
    assert substring_distance(no, nobody, [0, 6]) == 2  # whole words only
    i_dont_know = ["AY", "D", "OW", "N", "T", "N", "OW"]
    assert substring_distance(no, i_dont_know, [0, 1, 5, 7]) == 0  # "know" sounds like "no"
    assert substring_distance([], nobody) == 0


@given(tokens, tokens)
def test_edit_distance_is_a_symmetric_bounded_metric(a: list[str], b: list[str]) -> None:
    d = edit_distance(a, b)
    assert d == edit_distance(b, a)
    assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))
    assert (d == 0) == (a == b)


@given(tokens, tokens, tokens)
def test_substring_distance_finds_an_embedded_needle(
    pre: list[str], needle: list[str], post: list[str]
) -> None:
    hay = pre + needle + post
    assert substring_distance(needle, hay) == 0
    bounds = [0, len(pre), len(pre) + len(needle), len(hay)]
    assert substring_distance(needle, hay, bounds) == 0
    assert substring_distance(needle, hay, [0, len(hay)]) <= edit_distance(needle, hay)
