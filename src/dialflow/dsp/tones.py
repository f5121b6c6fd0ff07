"""Tone detectors for call analysis: fax (CNG, CED/ANSam), SIT, and voicemail beeps.

All are sans-I/O and frame-driven (20 ms frames at 8 kHz, time in ms from the caller).

- Known frequencies (fax and SIT) are detected with a :class:`~dialflow.dsp.goertzel.GoertzelBank`:
  ITU-T T.30 §5.2 CNG is 1100 Hz, 0.5 s on / 3 s off; T.30 CED and V.8 ANSam are 2100 Hz
  (ANSam adds 15 Hz AM and, V.25 §5.2.2.2, phase reversals every 450 ms). Telcordia
  GR-1162 / ITU-T E.180 SIT is three 274–380 ms tones from {913.8, 950, 985.2} Hz,
  {1370.6, 1400, 1428.5} Hz and {1776.7, 1800} Hz in that order.
- Voicemail beeps have no standard frequency, so :class:`ToneTracker` follows the dominant
  spectral peak (:mod:`dialflow.dsp.spectrum`) and :class:`BeepDetector` groups steady
  tone segments into a beep (single, several short beeps, or a rising pair).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt

from dialflow.dsp.goertzel import GoertzelBank
from dialflow.dsp.spectrum import FRAME_MS, FrameSpectrum, SpectrumAnalyzer

# ---------------------------------------------------------------------------------------
# Generic tone segments from the spectral peak
# ---------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class ToneConfig:
    """What counts as a steady tone frame and a tone segment."""

    min_purity: float = 0.9
    """Share of band energy in the peak for a frame to be tonal. Beeps and fax tones on
    a quiet line give > 0.99 and ~0.9 with noise 10 dB under them; voiced speech exceeds
    0.9 in about 3 % of frames, and then not for long at a steady frequency."""
    min_snr_db: float = 10.0
    """A tonal frame must be this far above the noise floor."""
    min_level_db: float = -55.0
    """... and above this absolute level (dBFS)."""
    max_drift_hz: float = 6.0
    """Largest distance of a frame's peak from the segment's mean frequency (or
    ``max_drift_ratio`` of it, whichever is larger): beeps are steady to a hertz, while even
    a whistle-pure high voice (F0 ≈ 320 Hz, purity 0.99) glides 20 Hz in 200 ms."""
    max_drift_ratio: float = 0.006
    """Relative form of ``max_drift_hz`` for high tones."""
    min_frames: int = 4
    """Frames a segment needs before it counts as a tone (80 ms)."""
    min_pulse_frames: int = 3
    """Shorter segments, down to this many frames (60 ms), are still reported, flagged as
    pulses: the tones of a multi-beep can be 60–80 ms each. Only the beep grouper uses
    them, and only as repeats of one frequency (see :class:`BeepGrouper`)."""
    max_gap_frames: int = 2
    """Non-tonal frames tolerated inside a segment (ANSam phase reversals, clicks)."""


@dataclass(slots=True)
class ToneSegment:
    """A run of tonal frames at one frequency. Times are ms (start of first frame, end of last)."""

    start_ms: int
    end_ms: int
    freq_hz: float
    frames: int = 1
    level_db: float = -100.0
    """Loudest in-band level of the segment."""
    pre_db: float = -100.0
    """In-band level 60–160 ms before the segment started (a beep rises out of quiet)."""
    levels: list[float] = field(default_factory=list)
    """In-band level of each tonal frame, in order (a beep holds its level; a struck or
    plucked note decays)."""

    pulse: bool = False
    """Shorter than :attr:`ToneConfig.min_frames`: not a tone on its own, maybe one pulse
    of a multi-beep."""

    @property
    def duration_ms(self) -> int:
        """Length of the segment in ms."""
        return self.end_ms - self.start_ms


class ToneTracker:
    """Groups tonal frames into :class:`ToneSegment` values.

    ``update`` returns the segment that just *closed* (if any); ``current`` is the open one.
    Closed segments shorter than ``min_frames`` but at least ``min_pulse_frames`` long come
    back with ``pulse=True``.
    """

    __slots__ = ("_cfg", "_gap", "_hist", "_hi", "_sum_hz", "current", "tonal")

    def __init__(self, cfg: ToneConfig | None = None) -> None:
        self._cfg = cfg or ToneConfig()
        self._hist = [-100.0] * 8  # in-band levels of the last 8 frames (ring)
        self._hi = 0
        self.current: ToneSegment | None = None
        self._gap = 0
        self._sum_hz = 0.0
        self.tonal = False

    def is_tonal(self, spec: FrameSpectrum, floor_db: float) -> bool:
        """Whether a frame is a steady tone (high purity, clearly above the floor)."""
        cfg = self._cfg
        return (
            spec.purity >= cfg.min_purity
            and spec.band_db >= floor_db + cfg.min_snr_db
            and spec.band_db >= cfg.min_level_db
        )

    def update(self, spec: FrameSpectrum, floor_db: float, now_ms: int) -> ToneSegment | None:
        """Feed one analysed frame ending at ``now_ms``; return a segment that just ended."""
        cfg = self._cfg
        tonal = self.is_tonal(spec, floor_db)
        self.tonal = tonal
        hist = self._hist
        # Frames 3..8 back (60-160 ms): before the 40 ms analysis window saw the tone.
        pre = max(hist[(self._hi - k) % 8] for k in range(3, 9))
        hist[self._hi % 8] = spec.band_db
        self._hi += 1
        cur = self.current
        closed: ToneSegment | None = None
        if cur is not None:
            mean_hz = self._sum_hz / cur.frames
            if tonal and abs(spec.peak_hz - mean_hz) <= max(
                cfg.max_drift_hz, cfg.max_drift_ratio * mean_hz
            ):
                cur.end_ms = now_ms
                cur.frames += 1
                cur.level_db = max(cur.level_db, spec.band_db)
                cur.levels.append(spec.band_db)
                self._sum_hz += spec.peak_hz
                cur.freq_hz = self._sum_hz / cur.frames
                self._gap = 0
                return None
            self._gap += 1
            if not tonal and self._gap <= cfg.max_gap_frames:
                return None
            closed = self._closed(cur)
            self.current = None
        if tonal:
            self.current = ToneSegment(
                now_ms - FRAME_MS, now_ms, spec.peak_hz, 1, spec.band_db, pre, [spec.band_db]
            )
            self._sum_hz = spec.peak_hz
            self._gap = 0
        return closed

    @property
    def confirmed(self) -> ToneSegment | None:
        """The open segment once it has ``min_frames`` frames (a tone, not a glitch)."""
        cur = self.current
        return cur if cur is not None and cur.frames >= self._cfg.min_frames else None

    def flush(self) -> ToneSegment | None:
        """Close and return the open segment (end of stream) if it is long enough."""
        cur, self.current = self.current, None
        return None if cur is None else self._closed(cur)

    def _closed(self, seg: ToneSegment) -> ToneSegment | None:
        cfg = self._cfg
        if seg.frames >= cfg.min_frames:
            return seg
        if seg.frames >= cfg.min_pulse_frames:
            seg.pulse = True
            return seg
        return None


# ---------------------------------------------------------------------------------------
# Fax and SIT by Goertzel
# ---------------------------------------------------------------------------------------


class KnownTone(Enum):
    """Tone families looked for with the Goertzel bank."""

    CNG = "cng"
    CED = "ced"
    SIT_LOW = "sit_low"
    SIT_MID = "sit_mid"
    SIT_HIGH = "sit_high"


_FAMILIES: dict[KnownTone, tuple[float, ...]] = {
    # ±25 Hz around nominal CNG/CED seen on real lines; bins 25 Hz apart keep the
    # Hann main lobe response above 0.8 anywhere in between.
    KnownTone.CNG: (1075.0, 1100.0, 1125.0),
    KnownTone.CED: (2075.0, 2100.0, 2125.0),
    KnownTone.SIT_LOW: (913.8, 950.0, 985.2),
    KnownTone.SIT_MID: (1370.6, 1400.0, 1428.5),
    KnownTone.SIT_HIGH: (1776.7, 1800.0),
}


_SIT_CONFIRM_MS = 120
"""How much of the third SIT segment must be heard before reporting SIT."""


@dataclass(slots=True, frozen=True)
class KnownToneConfig:
    """Settings of :class:`KnownToneDetector`."""

    min_ratio: float = 0.55
    """Goertzel tone ratio (1.0 = pure tone) for a frame to hold a family's tone."""
    min_level_db: float = -50.0
    """Frame level (dBFS) below which nothing is a tone."""
    max_gap_frames: int = 2
    """Frames without the tone tolerated inside a run (phase reversals, noise bursts)."""
    cng_min_ms: int = 360
    """CNG run length that declares a fax (the burst is 500 ms). 300 ms was tried: it
    gained 50 ms of median and turned one more music intro into a fax on held-out clips."""
    cng_max_ms: int = 900
    """A 1100 Hz run longer than this is not CNG (CNG bursts are 500 ms ±15 %)."""
    cng_edge_min_ms: int = 120
    """A 1100 Hz run that was already sounding at answer (it started within
    ``cng_edge_start_ms``) and then stops (falling edge) after at least this long is the
    tail of a CNG burst: the call was answered mid-burst. Without this the detector waits
    3 s for the next burst (1 call in 7 is answered during a burst)."""
    cng_edge_start_ms: int = 60
    """How soon after answer a run must start to count as a burst tail (the first frames;
    the 40 ms analysis window needs one frame)."""
    ced_min_ms: int = 400
    """CED/ANSam run length that declares a fax (the tone lasts 2.6–4 s)."""
    sit_min_ms: int = 200
    """Shortest SIT segment (Telcordia short segment 274 ms, less framing)."""
    sit_max_ms: int = 460
    """Longest SIT segment (long segment 380 ms, E.180 330 ms)."""
    sit_max_gap_ms: int = 80
    """Largest gap between SIT segments (they are contiguous, ≤ 4 ms apart)."""


@dataclass(slots=True)
class _Run:
    start_ms: int = -1
    end_ms: int = -1
    gap: int = 0
    reported: bool = False

    @property
    def active(self) -> bool:
        return self.start_ms >= 0


@dataclass(slots=True)
class KnownToneEvent:
    """A detected fax or SIT signal."""

    kind: str
    """``"cng"``, ``"ced"`` or ``"sit"``."""
    start_ms: int
    at_ms: int


@dataclass(slots=True)
class KnownToneDetector:
    """Fax (CNG, CED/ANSam) and SIT detection with a Goertzel bank.

    Feed every frame with :meth:`update`; it returns events as soon as a signal is
    certain enough: CNG after ``cng_min_ms`` of 1100 Hz (or at the falling edge of a
    burst that was already sounding at answer, see ``cng_edge_min_ms``), CED after ``ced_min_ms`` of
    2100 Hz, SIT when a low, a middle and a high SIT segment follow each other.
    ``cng_candidate_ms`` is how long the current 1100 Hz run has lasted (0 if none),
    which callers use to hold a decision while a possible CNG burst is in progress.
    """

    cfg: KnownToneConfig = field(default_factory=KnownToneConfig)
    _bank: GoertzelBank = field(init=False)
    _slices: dict[KnownTone, slice] = field(init=False)
    _runs: dict[KnownTone, _Run] = field(init=False)
    _sit_low: tuple[int, int] | None = field(init=False, default=None)
    _sit_mid: tuple[int, int] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        freqs: list[float] = []
        self._slices = {}
        for fam, fs in _FAMILIES.items():
            self._slices[fam] = slice(len(freqs), len(freqs) + len(fs))
            freqs.extend(fs)
        self._bank = GoertzelBank(freqs)
        self._runs = {fam: _Run() for fam in _FAMILIES}

    @property
    def cng_candidate_ms(self) -> int:
        """Duration of the 1100 Hz run in progress (0 when none)."""
        run = self._runs[KnownTone.CNG]
        return run.end_ms - run.start_ms if run.active and run.gap == 0 else 0

    def update(
        self, samples: npt.NDArray[np.float64], level_db: float, now_ms: int
    ) -> list[KnownToneEvent]:
        """Feed the current frame (floats in [-1, 1)); return fax/SIT events."""
        cfg = self.cfg
        events: list[KnownToneEvent] = []
        if level_db >= cfg.min_level_db:
            ratios = self._bank.ratios(samples)
        else:
            ratios = None
        for fam, run in self._runs.items():
            present = ratios is not None and float(ratios[self._slices[fam]].max()) >= cfg.min_ratio
            if present:
                if not run.active:
                    run.start_ms = now_ms - FRAME_MS
                    run.reported = False
                run.end_ms = now_ms
                run.gap = 0
            elif run.active:
                run.gap += 1
                if run.gap > cfg.max_gap_frames:
                    if fam is KnownTone.CNG and not run.reported:
                        ev = self._cng_tail(run)
                        if ev is not None:
                            events.append(ev)
                    self._close(fam, run)
                    run.start_ms = run.end_ms = -1
                    run.gap = 0
            if run.active and run.gap == 0 and not run.reported:
                ev = self._check(fam, run)
                if ev is not None:
                    run.reported = True
                    events.append(ev)
        return events

    def _check(self, fam: KnownTone, run: _Run) -> KnownToneEvent | None:
        cfg = self.cfg
        dur = run.end_ms - run.start_ms
        if fam is KnownTone.CNG:
            return (
                KnownToneEvent("cng", run.start_ms, run.end_ms) if dur >= cfg.cng_min_ms else None
            )
        if fam is KnownTone.CED:
            return (
                KnownToneEvent("ced", run.start_ms, run.end_ms) if dur >= cfg.ced_min_ms else None
            )
        if fam is not KnownTone.SIT_HIGH or dur < _SIT_CONFIRM_MS:
            return None
        # SIT needs all three segments in order (low, middle, high), back to back: a rising
        # two-tone voicemail beep can look like the first two.
        mid, low = self._sit_mid, self._sit_low
        if (
            mid is not None
            and low is not None
            and run.start_ms - mid[1] <= cfg.sit_max_gap_ms
            and mid[0] - low[1] <= cfg.sit_max_gap_ms
        ):
            return KnownToneEvent("sit", low[0], run.end_ms)
        return None

    def _cng_tail(self, run: _Run) -> KnownToneEvent | None:
        """T.30 §5.2: CNG is 0.5 s on / 3 s off. A run present from answer that ends with
        a falling edge is a burst cut by the answer; its edge is the fax's first sign."""
        cfg = self.cfg
        dur = run.end_ms - run.start_ms
        if run.start_ms <= cfg.cng_edge_start_ms and cfg.cng_edge_min_ms <= dur <= cfg.cng_max_ms:
            return KnownToneEvent("cng", run.start_ms, run.end_ms)
        return None

    def _close(self, fam: KnownTone, run: _Run) -> None:
        cfg = self.cfg
        if not cfg.sit_min_ms <= run.end_ms - run.start_ms <= cfg.sit_max_ms:
            return
        if fam is KnownTone.SIT_LOW:
            self._sit_low = (run.start_ms, run.end_ms)
        elif fam is KnownTone.SIT_MID:
            self._sit_mid = (run.start_ms, run.end_ms)


# ---------------------------------------------------------------------------------------
# Voicemail beeps
# ---------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class BeepConfig:
    """What a voicemail beep looks like (no standard: these bounds cover the common ones)."""

    min_hz: float = 300.0
    """Lowest frequency of a beep's first tone."""
    max_hz: float = 2020.0
    """Highest frequency of a beep's first tone (later tones of a rising beep may be up to
    ``max_step`` times higher). 2000 Hz plus 1 %: a nominal 2000 Hz beep measures a hair
    above 2000 (2000.001 Hz on the generated falling beeps, all of which were lost at
    exactly 2000); CED (2100 Hz) stays outside."""
    max_step: float = 2.0
    """Largest frequency ratio between consecutive tones of one beep (rising beeps ~1.25–1.8)."""
    min_segment_ms: int = 60
    """Shortest tone segment that can be part of a beep."""
    min_total_ms: int = 140
    """A beep's tones must add up to at least this (150 ms nominal, less framing)."""
    max_total_ms: int = 1600
    """A tone group longer than this (first start to last end) is not a beep."""
    max_inner_gap_ms: int = 250
    """Largest silence between the tones of a multi-tone beep."""
    end_gap_ms: int = 140
    """Tone-free time after the last tone before the beep is reported (it may continue)."""
    min_rise_db: float = 12.0
    """The first tone must be this much louder than the 60–160 ms before it: a beep comes
    out of the pause after the greeting, a note in music or a sung vowel does not."""
    max_decay_db: float = 6.0
    """Largest level swing inside a tone (its first and last frames, which the analysis
    window only partly covers, left out): a beep is generated at one amplitude, while a
    plucked or struck note in a music intro decays 10–20 dB over its length and was taken
    for the beep seconds before the real one."""


@dataclass(slots=True, frozen=True)
class Beep:
    """A detected beep: ``start_ms`` is where its first tone starts, ``end_ms`` where its
    last one ends."""

    start_ms: int
    end_ms: int
    freq_hz: float
    tones: int
    level_db: float = -100.0
    """Band level of its loudest tone (dBFS)."""


_SAME_TONE = 0.01
"""Relative frequency difference below which two segments are the same tone."""
_TONE_JUMP = 0.08
"""Relative frequency step above which the next segment is a new tone (two-tone beeps)."""
_MULTI_BEEP_GAP_MS = 40
"""Repeated short beeps are separated by silence; a tone split without a gap is drifting."""


class BeepGrouper:
    """Turns tone segments into :class:`Beep` values (the logic of :class:`BeepDetector`)."""

    __slots__ = ("_cfg", "_group")

    def __init__(self, cfg: BeepConfig | None = None) -> None:
        self._cfg = cfg or BeepConfig()
        self._group: list[ToneSegment] = []

    @property
    def pending(self) -> bool:
        """True while a tone group that may become a beep is open."""
        return bool(self._group)

    @property
    def pending_start_ms(self) -> int:
        """Start of the open group (-1 when none)."""
        return self._group[0].start_ms if self._group else -1

    def _starts(self, seg: ToneSegment) -> bool:
        # ``min_segment_ms`` bounds pulses too (a 3-frame pulse measures 60 ms).
        cfg = self._cfg
        return (
            seg.duration_ms >= cfg.min_segment_ms
            and cfg.min_hz <= seg.freq_hz <= cfg.max_hz
            and seg.level_db - seg.pre_db >= cfg.min_rise_db
        )

    def add(self, seg: ToneSegment) -> Beep | None:
        """Add a closed tone segment; returns a beep that this segment shows to be over."""
        cfg = self._cfg
        if not self._group:
            if self._starts(seg):
                self._group.append(seg)
            return None
        prev = self._group[-1]
        gap = seg.start_ms - prev.end_ms
        if gap > cfg.max_inner_gap_ms:
            done = self._finish()
            if self._starts(seg):
                self._group.append(seg)
            return done
        step = abs(seg.freq_hz / prev.freq_hz - 1.0)
        if step <= _SAME_TONE and gap >= _MULTI_BEEP_GAP_MS:
            self._group.append(seg)  # another short beep of the same tone
        elif seg.pulse:
            pass  # a pulse only ever joins as a repeat; any other one is not evidence
        elif (
            _TONE_JUMP <= step and 1.0 / cfg.max_step <= seg.freq_hz / prev.freq_hz <= cfg.max_step
        ):
            self._group.append(seg)  # the second tone of a two-tone beep
        else:
            # Adjacent segments a few per cent apart: a gliding tone (a sung or whistled
            # vowel), which a beep never is. Drop the whole group.
            self._group = []
        return None

    def tick(self, now_ms: int, tone_open: bool) -> Beep | None:
        """Close the group once ``end_gap_ms`` passed with no tone; returns the beep if valid.

        A group that is not a beep yet (too short in all) or is a run of repeats stays open
        up to ``max_inner_gap_ms``: the next pulse of a multi-beep may still come. Closing
        at ``end_gap_ms`` lost multi-beeps with 140–250 ms between their pulses (the next
        pulse cannot start a group of its own: it does not rise out of quiet), or reported
        them before their last pulse."""
        group = self._group
        if not group or tone_open:
            return None
        cfg = self._cfg
        repeats = len(group) >= 2 and abs(group[-1].freq_hz / group[-2].freq_hz - 1.0) <= _SAME_TONE
        settled = self._valid(group) and not repeats
        wait = cfg.end_gap_ms if settled else max(cfg.end_gap_ms, cfg.max_inner_gap_ms)
        if now_ms - group[-1].end_ms >= wait:
            return self._finish()
        return None

    def _valid(self, group: list[ToneSegment]) -> bool:
        cfg = self._cfg
        total = sum(s.duration_ms for s in group)
        if total < cfg.min_total_ms or group[-1].end_ms - group[0].start_ms > cfg.max_total_ms:
            return False
        for seg in group:
            inner = seg.levels[1:-1]
            if len(inner) >= 2 and max(inner) - min(inner) > cfg.max_decay_db:
                return False
        if any(s.pulse for s in group):
            # Pulses shorter than a tone only count as the repeats of a multi-beep: at least
            # two, all at one frequency. A vowel can be that pure for 60 ms, but not twice
            # at the same pitch with silence between.
            f0 = group[0].freq_hz
            return len(group) >= 2 and all(abs(s.freq_hz / f0 - 1.0) <= _SAME_TONE for s in group)
        return True

    def _finish(self) -> Beep | None:
        group, self._group = self._group, []
        if not group:
            return None
        if not self._valid(group):
            return None
        level = max(s.level_db for s in group)
        return Beep(group[0].start_ms, group[-1].end_ms, group[0].freq_hz, len(group), level)

    def flush(self) -> Beep | None:
        """End of stream: report the open group if it is a valid beep."""
        return self._finish()


class BeepDetector:
    """Standalone voicemail-beep detector (for the ``wait_for_beep`` flow node).

    Same shape as the AMD detector: ``feed(frame, now_ms)`` with 160 int16 samples at
    8 kHz, ``now_ms`` the time at the *end* of the frame; returns the beeps that ended.
    A beep is reported ``end_gap_ms`` after its last tone stops (it is then safe to
    start speaking); ``Beep.start_ms`` is when it began.
    """

    __slots__ = ("_analyzer", "_grouper", "_tracker", "_vad_floor")

    def __init__(self, cfg: BeepConfig | None = None, tone_cfg: ToneConfig | None = None) -> None:
        from dialflow.dsp.vad import EnergyVad

        self._analyzer = SpectrumAnalyzer()
        self._tracker = ToneTracker(tone_cfg)
        self._grouper = BeepGrouper(cfg)
        self._vad_floor = EnergyVad()

    def feed(self, frame: npt.NDArray[np.int16], now_ms: int) -> list[Beep]:
        """Analyse one frame; return beeps that finished with it."""
        spec = self._analyzer.analyze(frame)
        self._vad_floor.update(spec.band_db)
        return self.feed_spectrum(spec, self._vad_floor.floor_db, now_ms)

    def feed_spectrum(self, spec: FrameSpectrum, floor_db: float, now_ms: int) -> list[Beep]:
        """Same as :meth:`feed` for callers that already analysed the frame."""
        out: list[Beep] = []
        closed = self._tracker.update(spec, floor_db, now_ms)
        if closed is not None:
            b = self._grouper.add(closed)
            if b is not None:
                out.append(b)
        b = self._grouper.tick(now_ms, self._tracker.current is not None)
        if b is not None:
            out.append(b)
        return out

    @property
    def tone_now(self) -> bool:
        """True while a tone (possible beep) is sounding or a beep group is still open."""
        return self._tracker.current is not None or self._grouper.pending

    def finish(self) -> list[Beep]:
        """End of stream: close any open tone and report a final beep if valid."""
        out: list[Beep] = []
        seg = self._tracker.flush()
        if seg is not None:
            b = self._grouper.add(seg)
            if b is not None:
                out.append(b)
        b = self._grouper.flush()
        if b is not None:
            out.append(b)
        return out
