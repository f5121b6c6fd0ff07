"""Audio sources: lengths, exact samples, WAV decoding of every width, resampling."""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dialflow.media.sources import (
    AudioSource,
    InbandDtmf,
    RawPcm,
    Silence,
    ToneSource,
    WavFile,
    decode_wav,
)
from dialflow.rtp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode


def drain(source: AudioSource, n: int = 160) -> np.ndarray:
    chunks = []
    while (chunk := source.read(n)) is not None:
        chunks.append(chunk)
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def dominant_hz(x: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_silence_finite_and_endless() -> None:
    assert len(drain(Silence(50))) == 400
    endless = Silence()
    for _ in range(100):
        frame = endless.read(160)
        assert frame is not None and len(frame) == 160 and not frame.any()
    assert isinstance(endless, AudioSource)


def test_raw_pcm_from_array_and_bytes() -> None:
    samples = np.arange(-500, 500, dtype=np.int16)
    src = RawPcm(samples)
    first = src.read(160)
    assert first is not None and np.array_equal(first, samples[:160])
    assert np.array_equal(drain(src), samples[160:])
    assert src.read() is None
    src.rewind()
    assert np.array_equal(drain(src), samples)
    assert np.array_equal(drain(RawPcm(samples.astype("<i2").tobytes())), samples)
    assert RawPcm(samples).duration_ms == 125
    with pytest.raises(TypeError):
        RawPcm(samples.astype(np.float32))


def test_raw_pcm_resamples_other_rates() -> None:
    t = np.arange(16000) / 16000
    src = RawPcm((np.sin(2 * np.pi * 500 * t) * 10000).astype(np.int16), sample_rate=16000)
    assert len(src.samples) == 8000
    assert abs(dominant_hz(src.samples) - 500) < 2


def test_tone_source_length_frequency_and_level() -> None:
    tone = drain(ToneSource(1000, 500, amplitude=0.5))
    assert len(tone) == 4000
    assert abs(dominant_hz(tone) - 1000) < 3
    assert rms(tone) == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.01)
    # Phase-continuous across reads: equals one long read.
    assert np.array_equal(tone, ToneSource(1000, 500, amplitude=0.5).read(4000))
    with pytest.raises(ValueError):
        ToneSource(5000, 100)


def test_inband_dtmf_frequencies_and_timing() -> None:
    audio = drain(InbandDtmf("5w#", 100, gap_ms=50, pause_ms=200))
    assert len(audio) == 800 + 1600 + 800
    spectrum = np.abs(np.fft.rfft(audio[:800].astype(np.float64)))
    peaks = sorted(np.argsort(spectrum)[-2:] * 10)  # 800 samples: 10 Hz bins
    assert peaks == [770, 1340] or peaks == [770, 1330]
    assert not audio[800:2400].any()


def write_wav(path: Path, data: bytes, *, channels: int, width: int, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)


def test_wav_16bit_8k_mono_is_exact(tmp_path: Path) -> None:
    samples = np.arange(-1600, 1600, 2, dtype=np.int16)
    write_wav(tmp_path / "a.wav", samples.tobytes(), channels=1, width=2, rate=8000)
    src = WavFile(tmp_path / "a.wav")
    assert np.array_equal(drain(src), samples)
    assert (src.channels, src.source_rate, src.source_width) == (1, 8000, 2)


def test_wav_8bit_unsigned(tmp_path: Path) -> None:
    write_wav(tmp_path / "b.wav", bytes([0, 128, 255]), channels=1, width=1, rate=8000)
    assert drain(WavFile(tmp_path / "b.wav")).tolist() == [-32768, 0, 32512]


def test_wav_24bit_and_32bit(tmp_path: Path) -> None:
    values = [-(1 << 23), -1, 0, 1 << 8, (1 << 23) - 1]
    data24 = b"".join(v.to_bytes(3, "little", signed=True) for v in values)
    write_wav(tmp_path / "c.wav", data24, channels=1, width=3, rate=8000)
    assert drain(WavFile(tmp_path / "c.wav")).tolist() == [-32768, 0, 0, 1, 32767]
    values32 = [-(1 << 31), 1 << 16, (1 << 31) - 1]
    data32 = struct.pack("<3i", *values32)
    write_wav(tmp_path / "d.wav", data32, channels=1, width=4, rate=8000)
    assert drain(WavFile(tmp_path / "d.wav")).tolist() == [-32768, 1, 32767]


def test_wav_stereo_is_averaged(tmp_path: Path) -> None:
    stereo = np.array([[1000, 3000], [-2000, 0]], dtype=np.int16)
    write_wav(tmp_path / "e.wav", stereo.tobytes(), channels=2, width=2, rate=8000)
    assert drain(WavFile(tmp_path / "e.wav")).tolist() == [2000, -1000]


def test_wav_44k1_resampled_with_anti_aliasing(tmp_path: Path) -> None:
    rate = 44100
    t = np.arange(rate) / rate
    inband = (np.sin(2 * np.pi * 1000 * t) * 16000).astype(np.int16)
    # 6 kHz is above the 4 kHz Nyquist limit of 8 kHz audio: without a low-pass
    # filter it would alias to 2 kHz at full level.
    above = (np.sin(2 * np.pi * 6000 * t) * 16000).astype(np.int16)
    write_wav(tmp_path / "f.wav", inband.tobytes(), channels=1, width=2, rate=rate)
    write_wav(tmp_path / "g.wav", above.tobytes(), channels=1, width=2, rate=rate)
    ok = drain(WavFile(tmp_path / "f.wav"))
    assert len(ok) == 8000
    assert abs(dominant_hz(ok) - 1000) < 2
    assert rms(ok[100:-100]) == pytest.approx(16000 / np.sqrt(2), rel=0.02)
    aliased = drain(WavFile(tmp_path / "g.wav"))
    assert rms(aliased[100:-100]) < 16000 / np.sqrt(2) / 100  # > 40 dB down


def _riff(fmt_body: bytes, data: bytes) -> bytes:
    chunks = b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def test_wav_extensible_24bit_stereo_48k() -> None:
    rate, channels, bits = 48000, 2, 24
    t = np.arange(rate // 2) / rate
    mono = (np.sin(2 * np.pi * 440 * t) * 0.5 * (1 << 23)).astype(np.int32)
    frames = np.repeat(mono, 2)  # L = R
    data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in frames)
    pcm_guid = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
    fmt = (
        struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * 6, 6, bits, 22, bits, 3) + pcm_guid
    )
    src = WavFile(io.BytesIO(_riff(fmt, data)))
    out = drain(src)
    assert (src.channels, src.source_rate, src.source_width) == (2, 48000, 3)
    assert len(out) == 4000
    assert abs(dominant_hz(out) - 440) < 3
    assert rms(out[100:-100]) == pytest.approx(0.5 * 32768 / np.sqrt(2), rel=0.02)


def test_wav_float32() -> None:
    samples = np.array([0.0, 0.5, -0.25, 1.0], dtype="<f4")
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)
    out = drain(WavFile(io.BytesIO(_riff(fmt, samples.tobytes()))))
    assert out.tolist() == [0, 16384, -8192, 32767]


def test_not_a_wav() -> None:
    with pytest.raises(ValueError):
        WavFile(io.BytesIO(b"hello world, not a wav file"))
    fmt = struct.pack("<HHIIHH", 2, 1, 8000, 4000, 1, 4)  # ADPCM: refused
    with pytest.raises(ValueError):
        WavFile(io.BytesIO(_riff(fmt, b"\x00" * 10)))


@pytest.mark.parametrize(("tag", "encode"), [(7, ulaw_encode), (6, alaw_encode)])
def test_wav_g711_mulaw_and_alaw(tag: int, encode: Callable[[np.ndarray], np.ndarray]) -> None:
    # How PBXes and carriers often store call recordings: 8-bit G.711 codes, tag 7 / 6.
    pcm = (np.sin(2 * np.pi * 1000 * np.arange(800) / 8000) * 12000).astype(np.int16)
    codes = encode(pcm)
    fmt = struct.pack("<HHIIHHH", tag, 1, 8000, 8000, 1, 8, 0)
    src = WavFile(io.BytesIO(_riff(fmt, codes.tobytes())))
    out = drain(src)
    assert (src.channels, src.source_rate, src.source_width) == (1, 8000, 1)
    decoded = ulaw_decode(codes) if tag == 7 else alaw_decode(codes)
    assert np.array_equal(out, decoded)  # exactly the codec's values
    assert abs(dominant_hz(out) - 1000) < 3


def test_wav_streamed_data_size_and_odd_tail() -> None:
    # A recorder that never went back to fill in the sizes (0), and a truncated last sample.
    samples = np.array([100, -200, 300], dtype="<i2")
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    raw = b"RIFF\x00\x00\x00\x00WAVEfmt " + struct.pack("<I", len(fmt)) + fmt
    raw += b"data\x00\x00\x00\x00" + samples.tobytes() + b"\x07"
    audio = decode_wav(raw)
    assert (audio.signal * 32768).round().astype(int).tolist() == [100, -200, 300]
