"""AMD settings and the acoustic rules that sit around the classifier.

The rules follow Asterisk's ``app_amd`` (initial silence, greeting length, number of
words, silence after the greeting, maximum word length) but most of them act as
*backstops*: the trained model (:mod:`dialflow.amd.classifier`) makes the ordinary
human/machine call, and the rules handle what is certain without it (tones) or decide
when the model would wait too long. Every threshold is a field of :class:`AmdConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dialflow.amd.features import IDX


class AmdResult(StrEnum):
    """Values of ``amd.result``."""

    HUMAN = "human"
    MACHINE = "machine"
    FAX = "fax"
    UNKNOWN = "unknown"


@dataclass(slots=True, frozen=True)
class AmdConfig:
    """Every setting of the answering-machine detector. Times in ms from answer."""

    timeout_ms: int = 5000
    """Decide by then (API ``amd.timeoutMs``): with the model's best guess when it reaches
    ``timeout_min_confidence``, else ``unknown`` with reason ``timeout``."""
    detect_beep: bool = True
    """After a ``machine`` decision keep listening and report the end-of-greeting beep."""
    beep_wait_ms: int = 30000
    """How long after answer to keep listening for a beep (greetings rarely exceed 25 s)."""

    # -- rules in the spirit of Asterisk app_amd -----------------------------------------
    initial_silence_ms: int = 3500
    """No speech and no tone by then: ``unknown`` (reason ``silence``). Asterisk calls this
    a machine; on real lines it is mostly dead air or a network that never connected."""
    max_greeting_ms: int = 5000
    """Speech since the first word longer than this: ``machine`` (``long_greeting``).
    People who answer with a long business greeting talk for up to ~5 s."""
    max_word_ms: int = 4500
    """A continuous run of sound longer than this: ``machine`` (``long_word``; music or a
    recording with no breath pauses)."""
    max_utterances: int = 6
    """This many utterances without a decision: ``machine`` (``many_words``)."""
    min_human_silence_ms: int = 440
    """Silence after the last word before the model may call a person (a person who said
    "hello" waits for an answer; a greeting runs on)."""
    max_human_word_ms: int = 1300
    """A continuous sound longer than this (no 100 ms gap) does not look like a person's
    "hello" (speech has word gaps): the model may not call a person after it, except at
    the timeout. Catches music intros."""
    pause_human_ms: int = 0
    """When > 0: a pause this long after speech is a person waiting for the caller:
    ``human`` (reason ``pause``) unless the model is fairly sure of a machine. Greetings
    run on after sentence pauses of 0.2-0.65 s; a person who said "hello" waits 1.5 s or
    more. Off by default: 700 ms brings the p90 of human decisions from ~3.5 s to ~2.6 s
    but calls greetings with a 0.7-1.5 s pause ("Hi, it's Carla. … I can't get to the
    phone") human: 2.5 points of machine accuracy on amd-dev, 20 on amd-dev-hard
    (docs/amd.md)."""
    pause_human_max_machine: float = 0.5
    """The pause rule holds back when P(machine) is at least this."""
    pause_human_max_speech_ms: int = 5000
    """The pause rule applies only after at most this much speech."""
    after_greeting_silence_ms: int = 2000
    """Silence after a greeting that ends the analysis: decide with the model's
    best guess between human and machine (``after_greeting_silence``)."""

    # -- model decision thresholds ------------------------------------------------------
    human_confidence: float = 0.85
    """P(human) needed to decide ``human`` (after ``min_human_silence_ms``). Lower than
    ``machine_confidence``: calling a machine a person costs less than the reverse."""
    machine_confidence: float = 0.9
    """P(machine) needed to decide ``machine``; high because calling a person a machine is
    the costly error (they get hung up on or hear a voicemail)."""
    unknown_confidence: float = 0.95
    """P(unknown) needed to decide ``unknown`` before the timeout."""
    min_machine_speech_ms: int = 1000
    """Speech needed before the model may call a machine (no beep or keywords yet)."""
    timeout_min_confidence: float = 0.5
    """At the timeout (or end of audio) the best class must reach this, else ``unknown``."""
    timeout_machine_confidence: float = 0.75
    """At the timeout ``machine`` needs this much: someone still talking at the timeout may
    be a person with a long business greeting, and ``unknown`` is the safer answer."""
    classify_every_ms: int = 100
    """How often the model is evaluated (it is cheap; this bounds the cost at 10/s)."""
    min_decision_ms: int = 300
    """No decision from the model before this."""

    # -- tones ---------------------------------------------------------------------------
    fax_max_prior_speech_ms: int = 400
    """A CNG tone counts as fax only when less speech than this came before (a beep near
    1100 Hz after a greeting is not a fax)."""
    beep_min_prior_speech_ms: int = 300
    """A tone counts as a voicemail beep only after at least this much speech."""
    beep_max_below_speech_db: float = 16.0
    """A tone this much quieter than the loudest speech is background (a music note), not
    the beep of the greeting that was just heard."""
    beep_speech_after_ms: int = 20
    """Speech heard later than this after a tone's end makes it a vowel, not a beep (the
    beep is reported ``end_gap_ms`` after its end, so this looks at about 80 ms)."""

    def __post_init__(self) -> None:
        if self.timeout_ms <= 0:
            raise ValueError("timeout_ms must be positive")
        for name in ("human_confidence", "machine_confidence", "unknown_confidence"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise ValueError(f"{name} must be in (0, 1]")


@dataclass(slots=True, frozen=True)
class RuleVerdict:
    """A decision proposed by a rule."""

    result: AmdResult
    reason: str
    confidence: float


def backstop_rules(cfg: AmdConfig, x: list[float] | tuple[float, ...]) -> RuleVerdict | None:
    """Length/count rules on a feature vector (see :data:`~dialflow.amd.features.FEATURE_NAMES`).

    Returns a verdict when one of the Asterisk-style limits is crossed.
    """
    speech_ms = x[IDX["speech_s"]] * 1000.0
    if speech_ms <= 0.0:
        if x[IDX["t_s"]] * 1000.0 >= cfg.initial_silence_ms and x[IDX["tone_s"]] == 0.0:
            return RuleVerdict(AmdResult.UNKNOWN, "silence", 0.9)
        return None
    if x[IDX["since_onset_s"]] * 1000.0 - x[IDX["silence_s"]] * 1000.0 >= cfg.max_greeting_ms:
        return RuleVerdict(AmdResult.MACHINE, "long_greeting", 0.85)
    if x[IDX["longest_word_s"]] * 1000.0 >= cfg.max_word_ms:
        return RuleVerdict(AmdResult.MACHINE, "long_word", 0.8)
    if x[IDX["utterances"]] >= cfg.max_utterances:
        return RuleVerdict(AmdResult.MACHINE, "many_words", 0.8)
    return None


def describe(result: AmdResult, x: list[float] | tuple[float, ...]) -> str:
    """A short reason for a model decision, from the evidence that usually drives it."""
    if result is AmdResult.MACHINE:
        if x[IDX["kw_machine"]] >= 1.0:
            return "keywords"
        if x[IDX["since_onset_s"]] >= 2.5:
            return "long_greeting"
        if x[IDX["utterances"]] >= 3:
            return "many_words"
        return "model"
    if result is AmdResult.HUMAN:
        if x[IDX["silence_s"]] >= 0.3:
            return "short_greeting"
        return "model"
    if result is AmdResult.UNKNOWN:
        return "silence" if x[IDX["speech_s"]] == 0.0 else "noise"
    return "model"
