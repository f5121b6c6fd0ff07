"""G.711 tables byte for byte against CPython's audioop (the reference) over every input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dialflow.rtp import g711
from dialflow.rtp.g711 import Codec

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop", reason="audioop was removed in Python 3.13")

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def test_ulaw_encode_matches_audioop_for_all_65536_samples() -> None:
    assert g711.ulaw_encode(ALL_SAMPLES).tobytes() == audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2)


def test_alaw_encode_matches_audioop_for_all_65536_samples() -> None:
    assert g711.alaw_encode(ALL_SAMPLES).tobytes() == audioop.lin2alaw(ALL_SAMPLES.tobytes(), 2)


def test_ulaw_decode_matches_audioop_for_all_256_codes() -> None:
    out = g711.ulaw_decode(ALL_CODES)
    assert out.dtype == np.int16
    assert out.tobytes() == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_matches_audioop_for_all_256_codes() -> None:
    assert g711.alaw_decode(ALL_CODES).tobytes() == audioop.alaw2lin(ALL_CODES, 2)


def test_silence_codes() -> None:
    zeros = np.zeros(160, dtype=np.int16)
    assert g711.encode(zeros, Codec.PCMU).tobytes() == b"\xff" * 160
    assert g711.encode(zeros, Codec.PCMA).tobytes() == b"\xd5" * 160
    assert g711.silence_payload(Codec.PCMU) == b"\xff" * 160
    assert g711.silence_payload(Codec.PCMA) == b"\xd5" * 160
    assert Codec.PCMU.silence_byte == 0xFF and Codec.PCMA.silence_byte == 0xD5


@pytest.mark.parametrize("codec", list(Codec))
def test_batched_2d_encode_equals_frame_by_frame(codec: Codec) -> None:
    rng = np.random.default_rng(7)
    frames = rng.integers(-32768, 32768, size=(37, 160)).astype(np.int16)
    batch = g711.encode(frames, codec)
    assert batch.shape == (37, 160) and batch.dtype == np.uint8
    ref = audioop.lin2ulaw if codec is Codec.PCMU else audioop.lin2alaw
    for i in range(37):
        assert batch[i].tobytes() == ref(frames[i].tobytes(), 2)


@pytest.mark.parametrize("codec", list(Codec))
def test_batched_2d_decode(codec: Codec) -> None:
    codes = np.arange(256 * 2, dtype=np.uint16).astype(np.uint8).reshape(4, 128)
    pcm = g711.decode(codes, codec)
    assert pcm.shape == (4, 128)
    ref = audioop.ulaw2lin if codec is Codec.PCMU else audioop.alaw2lin
    assert pcm.tobytes() == ref(codes.tobytes(), 2)


def test_decoded_levels_encode_back_to_their_code() -> None:
    # Every A-law code survives decode -> encode; µ-law has two codes for zero
    # (0x7F "negative zero" and 0xFF) and the encoder always picks 0xFF.
    alaw_again = g711.encode(g711.decode(ALL_CODES, Codec.PCMA), Codec.PCMA).tobytes()
    assert alaw_again == ALL_CODES
    ulaw_again = g711.encode(g711.decode(ALL_CODES, Codec.PCMU), Codec.PCMU).tobytes()
    assert [i for i in range(256) if ulaw_again[i] != i] == [0x7F]
    assert ulaw_again[0x7F] == 0xFF


def test_rejects_wrong_dtypes() -> None:
    with pytest.raises(TypeError):
        g711.encode(np.zeros(160, dtype=np.float32), Codec.PCMU)
    with pytest.raises(TypeError):
        g711.decode(np.zeros(160, dtype=np.int16), Codec.PCMU)


def test_codec_from_payload_type() -> None:
    assert Codec.from_payload_type(0) is Codec.PCMU
    assert Codec.from_payload_type(8) is Codec.PCMA
    with pytest.raises(ValueError):
        Codec.from_payload_type(18)
