"""The answering-machine detector: frames and time in, decisions out (sans-I/O).

Usage, for one answered call::

    det = AmdDetector(AmdConfig(timeout_ms=5000, detect_beep=True))
    for frame, now_ms in frames:            # 160 int16 samples, ms since answer (frame end)
        for event in det.feed(frame, now_ms):
            ...                             # AmdDecision once, then maybe BeepDetected
    det.add_transcript("please leave a message", now_ms)   # optional, from a recognizer
    det.finish(now_ms)                      # end of audio: decide with what was heard

Order of evidence: fax tones (CNG with no speech before it, CED/ANSam) → ``fax``; SIT →
``unknown`` (``sit``); a beep after speech → ``machine`` (``beep``); then the length rules
of :mod:`dialflow.amd.rules` and the trained model of :mod:`dialflow.amd.classifier`,
evaluated every ``classify_every_ms``; at ``timeout_ms`` the model's best guess.
After ``machine`` with ``detect_beep`` the detector keeps listening and reports
:class:`BeepDetected` when the beep has ended (it is then time to speak).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dialflow.amd.classifier import TreeModel, default_model, keyword_scores
from dialflow.amd.features import IDX, FeatureConfig, FeatureExtractor
from dialflow.amd.rules import AmdConfig, AmdResult, RuleVerdict, backstop_rules, describe
from dialflow.dsp.tones import Beep, BeepConfig, KnownToneConfig, ToneConfig
from dialflow.dsp.vad import VadConfig

_CLASS_RESULT = {
    "human": AmdResult.HUMAN,
    "machine": AmdResult.MACHINE,
    "unknown": AmdResult.UNKNOWN,
}


@dataclass(slots=True, frozen=True)
class AmdDecision:
    """The detector's one decision for the call."""

    result: AmdResult
    decision_ms: int
    """When it was made, ms from answer."""
    reason: str
    """What decided it: ``beep``, ``cng``, ``ced``, ``sit``, ``silence``, ``noise``,
    ``short_greeting``, ``long_greeting``, ``long_word``, ``many_words``, ``keywords``,
    ``after_greeting_silence``, ``pause`` (only with ``pause_human_ms``), ``model`` or
    ``timeout``."""
    confidence: float
    """0..1: the model's probability, or a fixed figure for tone rules."""

    def as_dict(self) -> dict[str, object]:
        """The ``amd`` fields of the Call object this decision sets."""
        return {
            "result": self.result.value,
            "decisionMs": self.decision_ms,
            "reason": self.reason,
            "confidence": round(self.confidence, 3),
        }


@dataclass(slots=True, frozen=True)
class BeepDetected:
    """The end-of-greeting beep; reported after it ended, ``beep_ms`` is when it started."""

    beep_ms: int
    end_ms: int
    freq_hz: float


AmdEvent = AmdDecision | BeepDetected


class AmdDetector:
    """Answering-machine detection for one call. See the module docstring."""

    __slots__ = (
        "_beep",
        "_beep_reported",
        "_cfg",
        "_fe",
        "_finished",
        "_kw",
        "_last_eval",
        "_model",
        "_proba",
        "decision",
    )

    def __init__(
        self,
        cfg: AmdConfig | None = None,
        model: TreeModel | None = None,
        *,
        feature_cfg: FeatureConfig | None = None,
        vad_cfg: VadConfig | None = None,
        tone_cfg: ToneConfig | None = None,
        known_cfg: KnownToneConfig | None = None,
        beep_cfg: BeepConfig | None = None,
    ) -> None:
        self._cfg = cfg or AmdConfig()
        self._model = model or default_model()
        self._fe = FeatureExtractor(
            cfg=feature_cfg or FeatureConfig(),
            vad_cfg=vad_cfg or VadConfig(),
            tone_cfg=tone_cfg or ToneConfig(),
            known_cfg=known_cfg or KnownToneConfig(),
            beep_cfg=beep_cfg or BeepConfig(),
        )
        self.decision: AmdDecision | None = None
        self._beep: Beep | None = None
        self._beep_reported = False
        self._kw: tuple[float, float, bool] = (0.0, 0.0, False)
        self._last_eval = -(10**9)
        self._proba: npt.NDArray[np.float64] | None = None
        self._finished = False

    @property
    def config(self) -> AmdConfig:
        """The settings in use."""
        return self._cfg

    @property
    def features(self) -> FeatureExtractor:
        """The acoustic front end (read-only use: statistics for logs and tests)."""
        return self._fe

    @property
    def done(self) -> bool:
        """True when no further frame can change anything (decided, beep handled)."""
        d = self.decision
        if d is None:
            return self._finished
        return self._finished or not self._wants_beep() or self._beep_reported

    def add_transcript(self, text: str, now_ms: int) -> None:
        """Give the detector what the recognizer heard so far (replaces earlier text)."""
        m, h = keyword_scores(text)
        self._kw = (m, h, bool(text.strip()))
        self._last_eval = -(10**9)  # re-evaluate at the next frame

    def feed(self, frame: npt.NDArray[np.int16], now_ms: int) -> list[AmdEvent]:
        """Process one 20 ms frame (160 int16 samples) ending ``now_ms`` after answer."""
        if self.done:
            return []
        out = self._fe.push(frame, now_ms)
        events: list[AmdEvent] = []
        if self.decision is None:
            verdict = self._tones(out.known, out.beeps)
            if verdict is None and now_ms - self._last_eval >= self._cfg.classify_every_ms:
                self._last_eval = now_ms
                verdict = self._evaluate(now_ms)
            if verdict is None and now_ms >= self._cfg.timeout_ms:
                verdict = self._final_guess(now_ms, "timeout")
            if verdict is not None:
                self._decide(verdict, now_ms, events)
        else:
            self._take_beeps(out.beeps)
        self._emit_beep(now_ms, events)
        return events

    def finish(self, now_ms: int) -> list[AmdEvent]:
        """End of audio (or the call): decide with the evidence so far, report a last beep."""
        if self._finished:
            return []
        events: list[AmdEvent] = []
        beeps = self._fe.flush()
        if self.decision is None:
            verdict = self._tones([], beeps)
            if verdict is None:
                verdict = self._final_guess(now_ms, "timeout")
            self._decide(verdict, now_ms, events)
        else:
            self._take_beeps(beeps)
        self._emit_beep(now_ms, events)
        self._finished = True
        return events

    # -- internals ------------------------------------------------------------------------

    def _wants_beep(self) -> bool:
        d = self.decision
        return d is not None and d.result is AmdResult.MACHINE and self._cfg.detect_beep

    def _take_beeps(self, beeps: list[Beep]) -> None:
        st = self._fe.stats
        if self._beep is not None or st.speech_ms < self._cfg.beep_min_prior_speech_ms:
            return
        for b in beeps:
            # A greeting's beep is followed by the silence of the recording; a steady vowel
            # that looked like a tone is followed by more of the word.
            if st.last_active_ms > b.end_ms + self._cfg.beep_speech_after_ms:
                continue
            # A note of background music 15-25 dB under the person is not their voicemail's
            # beep (beeps measured -14 to +19 dB against the greeting's loudest speech).
            if b.level_db < st.peak_speech_db - self._cfg.beep_max_below_speech_db:
                continue
            self._beep = b
            return

    def _emit_beep(self, now_ms: int, events: list[AmdEvent]) -> None:
        if self._beep is not None and self._wants_beep() and not self._beep_reported:
            b = self._beep
            events.append(BeepDetected(b.start_ms, b.end_ms, b.freq_hz))
            self._beep_reported = True
        elif self._wants_beep() and now_ms >= self._cfg.beep_wait_ms:
            self._finished = True

    def _tones(self, known: list, beeps: list[Beep]) -> RuleVerdict | None:  # type: ignore[type-arg]
        cfg = self._cfg
        speech = self._fe.stats.speech_ms
        for ev in known:
            if ev.kind == "ced":
                return RuleVerdict(AmdResult.FAX, "ced", 0.98)
            if ev.kind == "cng" and speech < cfg.fax_max_prior_speech_ms:
                return RuleVerdict(AmdResult.FAX, "cng", 0.97)
            if ev.kind == "sit":
                return RuleVerdict(AmdResult.UNKNOWN, "sit", 0.95)
        self._take_beeps(beeps)
        if self._beep is not None:
            return RuleVerdict(AmdResult.MACHINE, "beep", 0.97)
        return None

    def _vector(self, now_ms: int) -> npt.NDArray[np.float64]:
        m, h, has = self._kw
        return self._fe.vector(now_ms, m, h, has)

    def _hold(self) -> bool:
        """Evidence in progress that a decision now could contradict (a tone sounding)."""
        fe = self._fe
        return fe.tone_open or fe.known.cng_candidate_ms > 0

    def _evaluate(self, now_ms: int) -> RuleVerdict | None:
        cfg = self._cfg
        x = self._vector(now_ms)
        if self._hold():
            return None
        xl = x.tolist()
        rule = backstop_rules(cfg, xl)
        if rule is not None:
            return rule
        if now_ms < cfg.min_decision_ms:
            return None
        p = self._model.predict_proba(x)
        self._proba = p
        classes = self._model.classes
        silence_ms = xl[IDX["silence_s"]] * 1000.0
        speech_ms = xl[IDX["speech_s"]] * 1000.0
        have_speech = speech_ms > 0.0
        for i, name in enumerate(classes):
            res = _CLASS_RESULT[name]
            pi = float(p[i])
            if res is AmdResult.HUMAN:
                ok = (
                    pi >= cfg.human_confidence
                    and have_speech
                    and silence_ms >= cfg.min_human_silence_ms
                    and xl[IDX["longest_word_s"]] * 1000.0 < cfg.max_human_word_ms
                )
            elif res is AmdResult.MACHINE:
                ok = pi >= cfg.machine_confidence and (
                    speech_ms >= cfg.min_machine_speech_ms or xl[IDX["kw_machine"]] >= 1.0
                )
            else:
                # Before initial_silence_ms a quiet line may still bring a fax tone or a
                # late "hello": only the silence rule or the timeout says unknown then.
                ok = pi >= cfg.unknown_confidence and now_ms >= cfg.initial_silence_ms
            if ok:
                return RuleVerdict(res, describe(res, xl), pi)
        if (
            cfg.pause_human_ms > 0
            and have_speech
            and silence_ms >= cfg.pause_human_ms
            and speech_ms <= cfg.pause_human_max_speech_ms
            and xl[IDX["longest_word_s"]] * 1000.0 < cfg.max_human_word_ms
            and float(p[classes.index("machine")]) < cfg.pause_human_max_machine
        ):
            return RuleVerdict(AmdResult.HUMAN, "pause", float(p[classes.index("human")]))
        if (
            have_speech
            and silence_ms >= cfg.after_greeting_silence_ms
            and xl[IDX["longest_word_s"]] * 1000.0 < cfg.max_human_word_ms
        ):
            return self._best(p, xl, "after_greeting_silence", exclude_unknown=True)
        return None

    def _best(
        self, p: npt.NDArray[np.float64], xl: list[float], reason: str, exclude_unknown: bool
    ) -> RuleVerdict:
        classes = self._model.classes
        order = np.argsort(-p)
        for i in order:
            res = _CLASS_RESULT[classes[int(i)]]
            if exclude_unknown and res is AmdResult.UNKNOWN:
                continue
            return RuleVerdict(res, reason, float(p[int(i)]))
        return RuleVerdict(AmdResult.UNKNOWN, reason, 0.0)

    def _final_guess(self, now_ms: int, reason: str) -> RuleVerdict:
        cfg = self._cfg
        x = self._vector(now_ms)
        xl = x.tolist()
        if xl[IDX["speech_s"]] <= 0.0:
            return RuleVerdict(AmdResult.UNKNOWN, "silence", 0.9)
        rule = backstop_rules(cfg, xl)
        if rule is not None and rule.result is not AmdResult.UNKNOWN:
            return rule
        p = self._model.predict_proba(x)
        self._proba = p
        i = int(np.argmax(p))
        res = _CLASS_RESULT[self._model.classes[i]]
        if xl[IDX["longest_word_s"]] * 1000.0 >= cfg.max_human_word_ms:
            # A long unbroken sound (no 100 ms gap): music or a recording, seldom a person
            # (1 in ~200 generated people, ~1 in 10 greetings). The model may prefer
            # "human" for the speech after a music intro; the sound itself says machine.
            pm = float(p[self._model.classes.index("machine")])
            return RuleVerdict(AmdResult.MACHINE, "long_word", max(pm, 0.6))
        need = cfg.timeout_machine_confidence if res is AmdResult.MACHINE else 0.0
        if float(p[i]) < max(cfg.timeout_min_confidence, need):
            return RuleVerdict(AmdResult.UNKNOWN, reason, float(p[i]))
        return RuleVerdict(res, describe(res, xl), float(p[i]))

    def _decide(self, v: RuleVerdict, now_ms: int, events: list[AmdEvent]) -> None:
        self.decision = AmdDecision(v.result, now_ms, v.reason, v.confidence)
        events.append(self.decision)
