"""The recognizer's worker side: pocketsphinx decoders and the constrained-search decision.

This module runs where the CPU work happens: in a worker process of
:class:`~dialflow.speech.asr.Recognizer` (or a worker thread in ``use_processes=False``
mode). pocketsphinx holds the GIL while it decodes (measured: a 7 s decode on a thread
delays the event loop by 570 ms), so a worker *process* is the only way to keep the media
clock on time.

One :class:`Engine` per worker owns a few decoders (each ~60–90 MB and 0.3–0.8 s to load,
so they are pooled, never created per call) and the utterances in progress. A decoder is
bound to one utterance from its first audio to its result.

Constrained search (phrases known in advance) — measured on our own prompts through
G.711 (docs/speech.md): a JSGF grammar of the phrases alone recognises every phrase that
was said, but forces any other sentence onto some phrase (6 of 8 foreign sentences were
"recognised" as a phrase, with posterior 1.0); a grammar with a garbage word loop costs
4× the CPU of free-form and loses phrases; keyword spotting found 2 of 10 phrases at any
threshold. So the utterance is decoded free-form while it streams (partials come from
there), and at its end the buffered audio is searched once more with the grammar (about
0.02× real time). The grammar's phrase is accepted when its pronunciation is within
``ACCEPT_PER`` of the free-form hypothesis; otherwise the free-form text stands, marked
with a phrase only if one is found inside it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from dialflow.speech.audio import Upsampler2x
from dialflow.speech.matching import normalize_words, phone_error_rate, substring_distance

__all__ = [
    "ACCEPT_PER",
    "MATCH_PER",
    "DecoderSettings",
    "Engine",
    "Transcript",
    "run_op",
]

log = logging.getLogger(__name__)

ACCEPT_PER: Final = 0.45
"""A grammar phrase is accepted when it differs from the free-form hypothesis by at most
this share of its phones. Measured (docs/speech.md): phrases that were said 0–0.39 (one
outlier at 0.70), other sentences 0.64 and up — except ones a word away from a phrase
("press nine for sales" against "press one for sales": 0.21)."""
MATCH_PER: Final = 0.25
"""A phrase counts as found *inside* a (partial) hypothesis within this share of its phones."""
_GRAMMARS_PER_DECODER: Final = 16
_FREE_SEARCH: Final = "_default"
_JSGF_WORD_RE: Final = re.compile(r"^[a-z0-9']+$")
_ALT_PRON_RE: Final = re.compile(r"\(\d+\)$")
# ARPAbet phones of the en-US model (CMUdict set); flite's cmulex adds ax/axr.
_PHONES: Final = frozenset(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
    "UH UW V W Y Z ZH".split()
)
_FLITE_PHONE_MAP: Final = {"AX": "AH", "AXR": "ER"}

TELEPHONE_CMN: Final = (
    "44.94,29.85,-27.84,46.31,-21.48,5.08,10.91,-20.60,13.33,-12.86,7.48,4.08,-4.52"
)
"""Starting cepstral mean for 8 kHz speech upsampled to 16 kHz.

Live decoding normalises features by a running cepstral mean that starts from the
model's wideband value; telephone audio has nothing above 4 kHz, so the first second or
two of every utterance were decoded against the wrong mean ("a what a portal" for "press
one for sales"). This is the mean measured over five flite voices through G.711; starting
each utterance from it raised streaming word accuracy from 0.56 to 0.85 (docs/speech.md).
Each utterance starts from it again: the previous utterance was another call.
"""


@dataclass(slots=True, frozen=True)
class Transcript:
    """What was recognised.

    ``text`` is normalised lower-case words, or the phrase exactly as given in the hints
    when a constrained search accepted it. ``confidence`` is in [0, 1]: for free-form text
    the mean word posterior; for an accepted phrase 1 − its phone distance to the
    free-form hypothesis; 0.0 for a partial without a phrase. ``phrase`` is the hint that
    was recognised (the whole utterance, or found inside it), None if none.
    """

    text: str
    confidence: float
    is_final: bool
    phrase: str | None = None


EMPTY_FINAL: Final = Transcript("", 0.0, True, None)


@dataclass(slots=True, frozen=True)
class DecoderSettings:
    """pocketsphinx configuration; None uses the model bundled in the wheel."""

    hmm: str | None = None
    lm: str | None = None
    dict: str | None = None
    cmn_init: str | None = TELEPHONE_CMN
    """Cepstral mean each utterance starts from (None: keep the decoder's running mean)."""
    extra: tuple[tuple[str, Any], ...] = ()
    """Further pocketsphinx options, e.g. (("beam", 1e-40),)."""

    def make_config(self) -> Any:
        """A pocketsphinx ``Config`` (quiet: pocketsphinx logs every utterance at INFO)."""
        from pocketsphinx import Config

        kwargs: dict[str, Any] = {"loglevel": "FATAL"}
        for key in ("hmm", "lm", "dict"):
            value = getattr(self, key)
            if value is not None:
                kwargs[key] = value
        kwargs.update(dict(self.extra))
        return Config(**kwargs)


# --- pronunciations -------------------------------------------------------------------

_LTS_CACHE: dict[str, tuple[str, ...] | None] = {}


def flite_pronunciation(word: str) -> tuple[str, ...] | None:
    """ARPAbet phones for a word not in the dictionary, from flite's letter-to-sound rules.

    Runs ``flite -t WORD -ps -o none`` (no shell; ``word`` is already [a-z0-9']+), cached
    per process. None when flite is not installed or gives nothing usable.
    """
    if word in _LTS_CACHE:
        return _LTS_CACHE[word]
    result: tuple[str, ...] | None = None
    exe = shutil.which("flite")
    if exe is not None and _JSGF_WORD_RE.match(word):
        try:
            out = subprocess.run(
                [exe, "-voice", "kal", "-t", word, "-ps", "-o", "none"],
                capture_output=True,
                timeout=5,
                check=False,
                text=True,
            ).stdout
            phones = [_FLITE_PHONE_MAP.get(p.upper(), p.upper()) for p in out.split() if p != "pau"]
            if phones and all(p in _PHONES for p in phones):
                result = tuple(phones)
        except (OSError, subprocess.SubprocessError):
            result = None
    _LTS_CACHE[word] = result
    return result


# --- decoders ---------------------------------------------------------------------------


class _PooledDecoder:
    """A decoder plus what we added to it: words and a small LRU of grammar searches."""

    __slots__ = ("decoder", "grammars")

    def __init__(self, decoder: Any) -> None:
        self.decoder = decoder
        self.grammars: OrderedDict[tuple[str, ...], str] = OrderedDict()

    def pronounce(self, word: str) -> tuple[str, ...] | None:
        """The word's phones, adding it to the dictionary from flite if it is unknown."""
        pron = self.decoder.lookup_word(word)
        if pron:
            return tuple(pron.split())
        phones = flite_pronunciation(word)
        if phones is None:
            return None
        try:
            # update=False: rebuilding the LM search costs 170 ms; only grammars built
            # after this need the word, and they read the dictionary when created.
            self.decoder.add_word(word, " ".join(phones), False)
        except (RuntimeError, ValueError):
            return None
        return phones

    def grammar(self, phrases: tuple[str, ...]) -> str | None:
        """Name of a JSGF search over ``phrases`` (normalised word strings), cached."""
        name = self.grammars.get(phrases)
        if name is not None:
            self.grammars.move_to_end(phrases)
            return name
        name = "g" + hashlib.sha1("\n".join(phrases).encode()).hexdigest()[:16]
        body = " | ".join(phrases)
        jsgf = f"#JSGF V1.0;\ngrammar hints;\npublic <hint> = {body};\n"
        try:
            self.decoder.add_jsgf_string(name, jsgf)
        except (RuntimeError, ValueError) as exc:
            log.debug("grammar for %d phrases refused: %s", len(phrases), exc)
            return None
        self.grammars[phrases] = name
        while len(self.grammars) > _GRAMMARS_PER_DECODER:
            _, old = self.grammars.popitem(last=False)
            self.decoder.remove_search(old)
        return name


@dataclass(slots=True)
class _Hints:
    """The phrases of one utterance, prepared for one decoder."""

    originals: dict[str, str]  # normalised words joined by spaces -> phrase as given
    phones: dict[str, tuple[str, ...]]  # normalised phrase -> its pronunciation
    grammar: str | None


@dataclass(slots=True)
class _Utterance:
    pooled: _PooledDecoder
    hints: _Hints | None
    upsampler: Upsampler2x = field(default_factory=Upsampler2x)
    audio16: list[np.ndarray] = field(default_factory=list)
    last_partial: str = ""


class Engine:
    """Decoders and utterances of one worker. Not thread-safe: one worker thread uses it."""

    def __init__(self, settings: DecoderSettings) -> None:
        self.settings = settings
        self._free: list[_PooledDecoder] = []
        self._utts: dict[int, _Utterance] = {}
        self.decoders = 0

    # pool ---------------------------------------------------------------------------
    def _take_decoder(self) -> _PooledDecoder:
        if self._free:
            return self._free.pop()
        from pocketsphinx import Decoder

        self.decoders += 1
        return _PooledDecoder(Decoder(self.settings.make_config()))

    def prewarm(self, count: int = 1) -> int:
        """Load decoders up to ``count`` so the first call does not pay 0.5 s."""
        while self.decoders < count:
            self._free.append(self._take_decoder())
        return self.decoders

    # utterances -------------------------------------------------------------------------
    def start(self, sid: int, hints: tuple[str, ...]) -> None:
        """Bind a decoder to utterance ``sid`` and start free-form decoding."""
        self.abort(sid)
        pooled = self._take_decoder()
        try:
            prepared = self._prepare_hints(pooled, hints) if hints else None
            dec = pooled.decoder
            dec.activate_search(_FREE_SEARCH)
            if self.settings.cmn_init is not None:
                dec.set_cmn(self.settings.cmn_init)
            dec.start_utt()
        except Exception:
            self._free.append(pooled)
            raise
        self._utts[sid] = _Utterance(pooled, prepared)

    def feed(self, sid: int, pcm8: bytes) -> Transcript:
        """Decode more 8 kHz int16 audio; returns the partial hypothesis so far."""
        utt = self._utts[sid]
        audio16 = utt.upsampler.process(np.frombuffer(pcm8, dtype=np.int16))
        if utt.hints is not None:
            utt.audio16.append(audio16)
        utt.pooled.decoder.process_raw(audio16.tobytes(), False, False)
        hyp = utt.pooled.decoder.hyp()
        text = _clean_text(hyp.hypstr) if hyp is not None else ""
        utt.last_partial = text
        phrase, score = self._find_inside(utt, text)
        return Transcript(text, score, False, phrase)

    def finish(self, sid: int) -> Transcript:
        """End utterance ``sid``: final free-form result, checked against the grammar."""
        utt = self._utts.pop(sid)
        try:
            return self._finish(utt)
        finally:
            self._free.append(utt.pooled)

    def abort(self, sid: int) -> None:
        """Drop utterance ``sid`` (caller hung up, session closed) and free its decoder."""
        utt = self._utts.pop(sid, None)
        if utt is None:
            return
        try:
            utt.pooled.decoder.end_utt()
        except RuntimeError:  # pragma: no cover - not in an utterance
            pass
        self._free.append(utt.pooled)

    def recognize(self, pcm8: bytes, hints: tuple[str, ...]) -> Transcript:
        """One whole buffer, start to end."""
        sid = -1
        self.start(sid, hints)
        try:
            self.feed(sid, pcm8)
        except Exception:
            self.abort(sid)
            raise
        return self.finish(sid)

    # internals ---------------------------------------------------------------------------
    def _prepare_hints(self, pooled: _PooledDecoder, hints: tuple[str, ...]) -> _Hints:
        originals: dict[str, str] = {}
        phones: dict[str, tuple[str, ...]] = {}
        grammar_phrases: list[str] = []
        for phrase in hints:
            words = [w for w in normalize_words(phrase) if _JSGF_WORD_RE.match(w)]
            if not words:
                continue
            key = " ".join(words)
            if key in originals:
                continue
            originals[key] = phrase
            prons = [pooled.pronounce(w) for w in words]
            # Unknown words with no letter-to-sound fallback: match on the rest, and keep
            # the phrase out of the grammar (JSGF refuses words it cannot pronounce).
            phones[key] = tuple(p for pron in prons if pron for p in pron)
            if all(prons):
                grammar_phrases.append(key)
        grammar = pooled.grammar(tuple(sorted(grammar_phrases))) if grammar_phrases else None
        return _Hints(originals, phones, grammar)

    def _phones_of(self, pooled: _PooledDecoder, words: list[str]) -> list[str]:
        return self._phones_and_bounds(pooled, words)[0]

    def _phones_and_bounds(
        self, pooled: _PooledDecoder, words: list[str]
    ) -> tuple[list[str], list[int]]:
        out: list[str] = []
        bounds = [0]
        for w in words:
            pron = pooled.decoder.lookup_word(w)
            if pron:
                out.extend(pron.split())
                bounds.append(len(out))
        return out, bounds

    def _find_inside(self, utt: _Utterance, text: str) -> tuple[str | None, float]:
        """The hint best found inside ``text`` (phone distance ≤ MATCH_PER), with its score."""
        hints = utt.hints
        if hints is None or not text:
            return None, 0.0
        hyp, bounds = self._phones_and_bounds(utt.pooled, text.split())
        best: tuple[float, str] | None = None
        for key, ref in hints.phones.items():
            if not ref:
                continue
            rate = substring_distance(ref, hyp, bounds) / len(ref)
            if rate <= MATCH_PER and (best is None or rate < best[0]):
                best = (rate, hints.originals[key])
        if best is None:
            return None, 0.0
        return best[1], 1.0 - best[0]

    def _finish(self, utt: _Utterance) -> Transcript:
        dec = utt.pooled.decoder
        dec.end_utt()
        words, posteriors = _final_words(dec)
        text = " ".join(words)
        confidence = float(np.mean(posteriors)) if posteriors else 0.0
        hints = utt.hints
        if hints is None:
            return Transcript(text, confidence, True, None)
        if hints.grammar is not None and utt.audio16 and words:
            phrase_key = self._grammar_pass(utt, hints.grammar)
            if phrase_key is not None and phrase_key in hints.phones:
                rate = phone_error_rate(
                    hints.phones[phrase_key], self._phones_of(utt.pooled, words)
                )
                if rate <= ACCEPT_PER:
                    original = hints.originals[phrase_key]
                    return Transcript(original, round(1.0 - rate, 4), True, original)
        phrase, _ = self._find_inside(utt, text)
        return Transcript(text, confidence, True, phrase)

    def _grammar_pass(self, utt: _Utterance, grammar: str) -> str | None:
        dec = utt.pooled.decoder
        audio = np.concatenate(utt.audio16)
        dec.activate_search(grammar)
        try:
            # Live mode (full_utt=False) on purpose: pocketsphinx 5.1.1 crashes in
            # cmn_live() on the next live utterance after a full_utt=True pass. The
            # running cepstral mean left by the free-form pass over this same audio is
            # the right starting point anyway.
            dec.start_utt()
            dec.process_raw(audio.tobytes(), False, False)
            dec.end_utt()
            hyp = dec.hyp()
        finally:
            dec.activate_search(_FREE_SEARCH)
        if hyp is None or not hyp.hypstr:
            return None
        return _clean_text(hyp.hypstr)


def _clean_text(hypstr: str) -> str:
    return " ".join(
        _ALT_PRON_RE.sub("", w) for w in hypstr.split() if not w.startswith(("<", "[", "+"))
    )


def _final_words(dec: Any) -> tuple[list[str], list[float]]:
    """Words of the final hypothesis (fillers and silences dropped) and their posteriors."""
    words: list[str] = []
    posteriors: list[float] = []
    for seg in dec.seg():
        w = seg.word
        if w.startswith(("<", "[", "+")):
            continue
        words.append(_ALT_PRON_RE.sub("", w))
        posteriors.append(float(seg.prob))
    if not words:
        hyp = dec.hyp()
        if hyp is not None and hyp.hypstr:
            words = _clean_text(hyp.hypstr).split()
    return words, posteriors


# --- executor entry point -------------------------------------------------------------------

_ENGINES: dict[str, Engine] = {}


def run_op(lane: str, settings: DecoderSettings, op: str, sid: int, payload: Any) -> Any:
    """Run one operation on the engine of ``lane`` (created on first use in this process).

    Module-level so a ``ProcessPoolExecutor`` can pickle it by reference. Operations:
    ``prewarm`` (payload: decoder count), ``start`` (hints tuple), ``feed`` (PCM bytes),
    ``finish``, ``abort``, ``recognize`` ((PCM bytes, hints)), ``close``.
    """
    if op == "close":
        _ENGINES.pop(lane, None)
        return None
    engine = _ENGINES.get(lane)
    if engine is None:
        engine = _ENGINES[lane] = Engine(settings)
    if op == "feed":
        return engine.feed(sid, payload)
    if op == "start":
        engine.start(sid, payload)
        return None
    if op == "finish":
        return engine.finish(sid)
    if op == "abort":
        engine.abort(sid)
        return None
    if op == "recognize":
        pcm, hints = payload
        return engine.recognize(pcm, hints)
    if op == "prewarm":
        return engine.prewarm(payload)
    raise ValueError(f"unknown recognizer op {op!r}")
