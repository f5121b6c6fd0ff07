"""Answering-machine detection: see :mod:`dialflow.amd.detector` and docs/amd.md."""

from dialflow.amd.detector import AmdDecision, AmdDetector, AmdEvent, BeepDetected
from dialflow.amd.rules import AmdConfig, AmdResult

__all__ = ["AmdConfig", "AmdDecision", "AmdDetector", "AmdEvent", "AmdResult", "BeepDetected"]
