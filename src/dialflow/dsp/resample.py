"""Sample-rate conversion for offline use (recordings at any rate → 8 kHz).

A windowed-sinc interpolator evaluated directly at each output instant: exact for any
pair of rates (44.1 kHz → 8 kHz included), anti-aliased by scaling the kernel to the
lower of the two Nyquist frequencies, and plain numpy. It is meant for files, not for the
per-frame path (RTP audio is already 8 kHz).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

HALF_TAPS = 16
"""Kernel half-width in input samples at the lower rate (Kaiser window, beta 8.6)."""
CUTOFF = 0.94
"""Pass band as a share of the output Nyquist frequency when downsampling."""
_CHUNK = 8192


def resample(
    x: npt.NDArray[np.floating] | npt.NDArray[np.integer], rate_in: int, rate_out: int
) -> npt.NDArray[np.float64]:
    """Resample mono ``x`` from ``rate_in`` to ``rate_out`` Hz (float64 out, same scale)."""
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError("sample rates must be positive")
    xf = np.asarray(x, dtype=np.float64)
    if rate_in == rate_out or xf.size == 0:
        return xf.copy()
    ratio = rate_out / rate_in
    fc = min(1.0, ratio) * (CUTOFF if ratio < 1.0 else 1.0)  # relative to input Nyquist
    half = int(np.ceil(HALF_TAPS / fc))
    n_out = int(np.floor(xf.size * ratio))
    pad = np.concatenate([np.zeros(half), xf, np.zeros(half + 1)])
    offsets = np.arange(-half + 1, half + 1)
    beta = 8.6
    out = np.empty(n_out, dtype=np.float64)
    for start in range(0, n_out, _CHUNK):
        n = np.arange(start, min(start + _CHUNK, n_out))
        t = n / ratio
        base = np.floor(t).astype(np.int64)
        k = base[:, None] + offsets[None, :]
        d = t[:, None] - k
        win_arg = np.clip(1.0 - (d / (half + 1)) ** 2, 0.0, None)
        w = np.sinc(fc * d) * fc * np.i0(beta * np.sqrt(win_arg)) / np.i0(beta)
        out[start : start + n.size] = np.einsum("ij,ij->i", pad[k + half], w)
    return out
