"""Offline speech: flite/espeak-ng prompts (:mod:`.tts`) and pocketsphinx recognition (:mod:`.asr`).

Everything comes from registry packages (Debian ``flite``/``espeak-ng``, the
``pocketsphinx`` wheel with its bundled en-US model); nothing is downloaded at run time.
Importing this package is cheap: pocketsphinx and scipy load on first use.
"""

from dialflow.speech.asr import (
    AsrError,
    Recognizer,
    RecognizerConfig,
    RecognizerSession,
    SessionState,
    Transcript,
)
from dialflow.speech.tts import DEFAULT_VOICE, TtsEngine, TtsError, Voice, sanitize_text
from dialflow.speech.vad import EndpointConfig, Endpointer, EndpointState

__all__ = [
    "DEFAULT_VOICE",
    "AsrError",
    "EndpointConfig",
    "EndpointState",
    "Endpointer",
    "Recognizer",
    "RecognizerConfig",
    "RecognizerSession",
    "SessionState",
    "Transcript",
    "TtsEngine",
    "TtsError",
    "Voice",
    "sanitize_text",
]
