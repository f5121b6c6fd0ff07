"""Streaming acoustic front end of the answering-machine detector.

:class:`FeatureExtractor` takes 20 ms frames and keeps what the rules and the classifier
need, in O(1) per frame:

- the spectral analysis of the frame (:mod:`dialflow.dsp.spectrum`), the VAD
  (:mod:`dialflow.dsp.vad`), the tone tracker and the Goertzel fax/SIT detector
  (:mod:`dialflow.dsp.tones`);
- running speech statistics in the spirit of Asterisk's ``app_amd`` (initial silence,
  words, utterances, their lengths, silence since the last speech) plus a few spectral
  summaries of the speech frames.

Speech statistics lag the input by ``tone_delay_frames`` frames: a frame is only counted
as speech once we know it is not the start of a steady tone (a tone needs 4 frames to
be confirmed), so beeps, fax and SIT tones never count as talking.

:meth:`FeatureExtractor.vector` returns the fixed-order feature vector of
:data:`FEATURE_NAMES` that the classifier (:mod:`dialflow.amd.classifier`) was trained on.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dialflow.dsp.spectrum import FRAME_MS, FrameSpectrum, SpectrumAnalyzer
from dialflow.dsp.tones import (
    Beep,
    BeepConfig,
    BeepGrouper,
    KnownToneConfig,
    KnownToneDetector,
    KnownToneEvent,
    ToneConfig,
    ToneSegment,
    ToneTracker,
)
from dialflow.dsp.vad import EnergyVad, VadConfig

FEATURE_NAMES: tuple[str, ...] = (
    "t_s",  # time since answer
    "initial_silence_s",  # first speech onset (or t when none yet)
    "speech_s",  # total speech time
    "since_onset_s",  # time since the first speech onset
    "silence_s",  # time since the last speech frame
    "words",  # speech runs separated by >= word_gap_ms
    "utterances",  # speech runs separated by >= utterance_gap_ms
    "longest_utterance_s",
    "last_utterance_s",  # the current or last utterance
    "longest_pause_s",  # longest pause between utterances
    "activity",  # speech_s / since_onset_s
    "snr_db",  # loudest speech vs noise floor
    "level_std_db",  # level variation over speech frames (speech is bursty, music steady)
    "purity",  # mean peak purity of speech frames (music/tones high, speech low)
    "recent_rel_db",  # recent speech level vs the loudest (background talk is quieter)
    "loud_share",  # share of speech frames within 10 dB of the loudest
    "tone_s",  # time in confirmed steady tones
    "longest_word_s",  # longest continuous speech run
    "longest_gap_s",  # longest silence between two speech frames (any length)
    "mid_gaps",  # gaps of sentence-pause length (200-700 ms) inside the speech
    "first_utterance_s",  # length of the first utterance (a person's "hello" is short)
    "syllable_rate",  # level peaks per second of speech (routine answers are fast)
    "kw_machine",  # transcript: machine phrase score (0 without transcript)
    "kw_human",  # transcript: human phrase score
    "has_transcript",
)
N_FEATURES = len(FEATURE_NAMES)
IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}


@dataclass(slots=True, frozen=True)
class FeatureConfig:
    """Segmentation settings of the speech statistics."""

    word_gap_ms: int = 100
    """Silence that separates two words (Asterisk ``between_words_silence`` is 50 ms; 100 ms
    keeps espeak/G.711 plosive gaps inside a word)."""
    utterance_gap_ms: int = 400
    """Silence that separates two utterances (phrases or sentences)."""
    tone_delay_frames: int = 3
    """Frames the speech statistics lag behind the input while a tone may be starting."""
    syllable_dip_db: float = 4.0
    """Level drop after a peak that marks a syllable nucleus."""
    mid_gap_min_ms: int = 200
    """Shortest gap counted in ``mid_gaps`` (comma pauses and plosives are shorter)."""
    mid_gap_max_ms: int = 700
    """Longest gap counted in ``mid_gaps``: sentence pauses of recorded greetings are
    0.2-0.65 s; a person who talks again after a pause has usually waited longer."""


@dataclass(slots=True)
class SpeechStats:
    """Running speech segmentation; times in ms from answer (end of frame)."""

    cfg: FeatureConfig
    t_ms: int = 0
    speech_frames: int = 0
    first_onset_ms: int = -1
    last_active_ms: int = -1
    utt_start_ms: int = -1
    word_start_ms: int = -1
    words: int = 0
    utterances: int = 0
    longest_utt_ms: int = 0
    longest_word_ms: int = 0
    longest_pause_ms: int = 0
    longest_gap_ms: int = 0
    mid_gaps: int = 0
    first_utt_ms: int = -1
    nuclei: int = 0
    syl_up: bool = True
    syl_ext: float = 0.0
    tone_frames: int = 0
    # sums over speech frames
    s_lvl: float = 0.0
    s_lvl2: float = 0.0
    s_pur: float = 0.0
    recent_rel_db: float = 0.0
    loud_frames: int = 0
    peak_speech_db: float = -100.0
    """Band level of the loudest speech frame (tones excluded)."""

    def add(self, t_ms: int, active: bool, tone: bool, spec: FrameSpectrum, peak_db: float) -> None:
        """Account for one finalised frame ending at ``t_ms`` (``peak_db``: loudest speech)."""
        self.t_ms = t_ms
        if tone:
            self.tone_frames += 1
        if not active:
            return
        cfg = self.cfg
        start = t_ms - FRAME_MS
        if self.first_onset_ms < 0:
            self.first_onset_ms = start
            self.utt_start_ms = start
            self.word_start_ms = start
            self.words = 1
            self.utterances = 1
        else:
            gap = start - self.last_active_ms
            if gap > 0:
                self.longest_gap_ms = max(self.longest_gap_ms, gap)
                # A recorded greeting runs on after short sentence pauses; a person who
                # speaks again after a pause usually waited longer (for an answer).
                if cfg.mid_gap_min_ms <= gap < cfg.mid_gap_max_ms:
                    self.mid_gaps += 1
            if gap >= cfg.utterance_gap_ms:
                if self.first_utt_ms < 0:
                    self.first_utt_ms = self.last_active_ms - self.utt_start_ms
                self.longest_pause_ms = max(self.longest_pause_ms, gap)
                self.utterances += 1
                self.utt_start_ms = start
            if gap >= cfg.word_gap_ms:
                self.words += 1
                self.word_start_ms = start
        self._syllables(spec.band_db, start != self.last_active_ms)
        self.last_active_ms = t_ms
        self.longest_utt_ms = max(self.longest_utt_ms, t_ms - self.utt_start_ms)
        self.longest_word_ms = max(self.longest_word_ms, t_ms - self.word_start_ms)
        self.speech_frames += 1
        lvl = spec.band_db
        self.peak_speech_db = max(self.peak_speech_db, lvl)
        self.s_lvl += lvl
        self.s_lvl2 += lvl * lvl
        self.s_pur += spec.purity
        rel = lvl - peak_db
        # ~200 ms of speech memory: is what we hear now the person who answered, or
        # something 10-20 dB under them?
        self.recent_rel_db += 0.1 * (rel - self.recent_rel_db)
        if rel >= -10.0:
            self.loud_frames += 1

    def _syllables(self, lvl: float, after_gap: bool) -> None:
        """Count syllable nuclei: level peaks with a dip of ``syllable_dip_db`` after them."""
        dip = self.cfg.syllable_dip_db
        if after_gap:
            if self.syl_up and self.speech_frames:  # the run before the gap ended on a peak
                self.nuclei += 1
            self.syl_up, self.syl_ext = True, lvl
        elif self.syl_up:
            if lvl > self.syl_ext:
                self.syl_ext = lvl
            elif lvl < self.syl_ext - dip:
                self.nuclei += 1
                self.syl_up, self.syl_ext = False, lvl
        elif lvl < self.syl_ext:
            self.syl_ext = lvl
        elif lvl > self.syl_ext + dip:
            self.syl_up, self.syl_ext = True, lvl

    @property
    def syllable_rate(self) -> float:
        """Syllable nuclei per second of speech (0 before 300 ms of speech)."""
        if self.speech_frames * FRAME_MS < 300:
            return 0.0
        n = self.nuclei + (1 if self.syl_up else 0)
        return n * 1000.0 / (self.speech_frames * FRAME_MS)

    @property
    def speech_ms(self) -> int:
        """Total speech time so far."""
        return self.speech_frames * FRAME_MS

    @property
    def silence_ms(self) -> int:
        """Time since the last speech frame (since answer when there was none)."""
        return self.t_ms - (self.last_active_ms if self.last_active_ms >= 0 else 0)

    @property
    def in_speech(self) -> bool:
        """True when the last finalised frame was speech."""
        return self.last_active_ms == self.t_ms and self.t_ms > 0


@dataclass(slots=True)
class FrameOutcome:
    """What one frame produced besides statistics."""

    spec: FrameSpectrum
    known: list[KnownToneEvent]
    beeps: list[Beep]


@dataclass(slots=True)
class _Pending:
    t_ms: int
    active: bool
    spec: FrameSpectrum


@dataclass(slots=True)
class FeatureExtractor:
    """Per-call acoustic front end (sans-I/O): :meth:`push` every frame, read the state."""

    cfg: FeatureConfig = field(default_factory=FeatureConfig)
    vad_cfg: VadConfig = field(default_factory=VadConfig)
    tone_cfg: ToneConfig = field(default_factory=ToneConfig)
    known_cfg: KnownToneConfig = field(default_factory=KnownToneConfig)
    beep_cfg: BeepConfig = field(default_factory=BeepConfig)
    analyzer: SpectrumAnalyzer = field(init=False)
    vad: EnergyVad = field(init=False)
    tracker: ToneTracker = field(init=False)
    known: KnownToneDetector = field(init=False)
    beeps: BeepGrouper = field(init=False)
    stats: SpeechStats = field(init=False)
    last_tone: ToneSegment | None = field(init=False, default=None)
    _pending: deque[_Pending] = field(init=False)

    def __post_init__(self) -> None:
        self.analyzer = SpectrumAnalyzer()
        self.vad = EnergyVad(self.vad_cfg)
        self.tracker = ToneTracker(self.tone_cfg)
        self.known = KnownToneDetector(self.known_cfg)
        self.beeps = BeepGrouper(self.beep_cfg)
        self.stats = SpeechStats(self.cfg)
        self._pending = deque()

    def push(self, frame: npt.NDArray[np.int16], now_ms: int) -> FrameOutcome:
        """Analyse one 160-sample frame ending at ``now_ms``."""
        spec = self.analyzer.analyze(frame)
        active = self.vad.update(spec.band_db)
        floor = self.vad.floor_db
        closed = self.tracker.update(spec, floor, now_ms)
        beeps: list[Beep] = []
        if closed is not None:
            if not closed.pulse:  # pulses stay speech for the statistics (model inputs)
                self.last_tone = closed
            b = self.beeps.add(closed)
            if b is not None:
                beeps.append(b)
        b = self.beeps.tick(now_ms, self.tracker.current is not None)
        if b is not None:
            beeps.append(b)
        known = self.known.update(self.analyzer.samples, spec.level_db, now_ms)
        self._pending.append(_Pending(now_ms, active, spec))
        if len(self._pending) > self.cfg.tone_delay_frames:
            self._finalise(self._pending.popleft())
        return FrameOutcome(spec, known, beeps)

    def _is_tone(self, t_ms: int) -> bool:
        cur = self.tracker.confirmed
        if cur is not None and t_ms > cur.start_ms:
            return True
        last = self.last_tone
        return last is not None and last.start_ms < t_ms <= last.end_ms + FRAME_MS

    def _finalise(self, p: _Pending) -> None:
        tone = self._is_tone(p.t_ms)
        self.stats.add(p.t_ms, p.active and not tone, tone, p.spec, self.vad.peak_db)

    def flush(self) -> list[Beep]:
        """End of stream: finalise pending frames and close open tones."""
        out: list[Beep] = []
        seg = self.tracker.flush()
        if seg is not None:
            if not seg.pulse:
                self.last_tone = seg
            b = self.beeps.add(seg)
            if b is not None:
                out.append(b)
        b = self.beeps.flush()
        if b is not None:
            out.append(b)
        while self._pending:
            self._finalise(self._pending.popleft())
        return out

    @property
    def tone_open(self) -> bool:
        """A tone is sounding or a tone group (possible beep) is still open."""
        return self.tracker.current is not None or self.beeps.pending

    def vector(
        self, now_ms: int, kw_machine: float = 0.0, kw_human: float = 0.0, has_tx: bool = False
    ) -> npt.NDArray[np.float64]:
        """The feature vector (order of :data:`FEATURE_NAMES`) at ``now_ms``."""
        st = self.stats
        t = st.t_ms
        n = st.speech_frames
        have = st.first_onset_ms >= 0
        since_onset = (t - st.first_onset_ms) if have else 0
        last_utt = (st.last_active_ms - st.utt_start_ms) if have else 0
        if n:
            mean_lvl = st.s_lvl / n
            lvl_std = float(np.sqrt(max(st.s_lvl2 / n - mean_lvl * mean_lvl, 0.0)))
            pur = st.s_pur / n
        else:
            lvl_std = pur = 0.0
        speech_s = n * FRAME_MS / 1000.0
        if st.first_utt_ms >= 0:
            first_utt = st.first_utt_ms
        else:  # still in the first utterance
            first_utt = last_utt
        return np.array(
            [
                now_ms / 1000.0,
                (st.first_onset_ms if have else t) / 1000.0,
                speech_s,
                since_onset / 1000.0,
                st.silence_ms / 1000.0,
                st.words,
                st.utterances,
                st.longest_utt_ms / 1000.0,
                last_utt / 1000.0,
                st.longest_pause_ms / 1000.0,
                (n * FRAME_MS / since_onset) if since_onset > 0 else 0.0,
                (self.vad.peak_db - self.vad.floor_db) if have else 0.0,
                lvl_std,
                pur,
                st.recent_rel_db,
                (st.loud_frames / n) if n else 0.0,
                st.tone_frames * FRAME_MS / 1000.0,
                st.longest_word_ms / 1000.0,
                st.longest_gap_ms / 1000.0,
                st.mid_gaps,
                first_utt / 1000.0,
                st.syllable_rate,
                kw_machine,
                kw_human,
                1.0 if has_tx else 0.0,
            ],
            dtype=np.float64,
        )
