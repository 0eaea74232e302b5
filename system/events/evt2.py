"""Prophesee EVT 2.0 ``.raw``: 32-bit words, 34-bit µs timestamps.

- ``CD_OFF 0x0`` / ``CD_ON 0x1`` (the type is the polarity): t bits 5..0 in
  [27:22], x in [21:11], y in [10:0]; ``t = time_high << 6 | t_low``.
- ``EVT_TIME_HIGH 0x8``: t bits 33..6 in [27:0]. Events before the first
  TIME_HIGH have no time base and are dropped (counted), as OpenEB does. A
  TIME_HIGH lower than the previous one (the 34-bit counter wrapping after
  4.77 h) adds ``1 << 34``, so time stays monotonic.
- ``EXT_TRIGGER 0xA``: t low in [27:22], channel in [12:8], edge in [0] →
  :meth:`~foveate.system.events._raw.RawReader.triggers`.
- ``IMU 0xD``, ``OTHERS 0xE``, ``CONTINUED 0xF`` are skipped and counted;
  any other type is skipped and counted as unknown.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from foveate.system.events._raw import RawReader, RawWriter

_TH, _OVF, _HAS_TB = range(3)


@njit(cache=True, nogil=True)
def _decode(words, i, out, n_out, trig, st, cnt, word_base):  # pragma: no cover - compiled
    ox = out["x"]
    oy = out["y"]
    ot = out["t"]
    op = out["p"]
    cap = out.shape[0] - 1
    tcap = trig.shape[0]
    n_trig = 0
    th = st[_TH]
    ovf = st[_OVF]
    has_tb = st[_HAS_TB]
    base = (ovf << 34) | (th << 6)
    n = words.shape[0]
    while i < n:
        if n_out > cap or n_trig >= tcap:
            break
        w = np.int64(words[i])
        typ = w >> 28
        if typ <= 1:
            if has_tb:
                ox[n_out] = (w >> 11) & 0x7FF
                oy[n_out] = w & 0x7FF
                ot[n_out] = base | ((w >> 22) & 0x3F)
                op[n_out] = typ
                n_out += 1
            else:
                cnt[3] += 1
        elif typ == 0x8:
            v = w & 0xFFFFFFF
            if has_tb and v < th:
                ovf += 1
            th = v
            has_tb = 1
            base = (ovf << 34) | (th << 6)
        elif typ == 0xA:
            if has_tb:
                trig[n_trig]["t"] = base | ((w >> 22) & 0x3F)
                trig[n_trig]["id"] = (w >> 8) & 0x1F
                trig[n_trig]["value"] = w & 1
                n_trig += 1
        elif typ == 0xD or typ == 0xE or typ == 0xF:
            cnt[0] += 1
        else:
            cnt[1] += 1
            if cnt[2] < 0:
                cnt[2] = word_base + i
        i += 1
    st[_TH] = th
    st[_OVF] = ovf
    st[_HAS_TB] = has_tb
    return i, n_out, n_trig


@njit(cache=True, nogil=True)
def _encode(x, y, t, p, out, st):  # pragma: no cover - compiled
    """Encode sorted events; ``st[0]`` = last t >> 6 (-1 = none). Words written, or -1 if ``out`` is too small."""
    k = 0
    cap = out.shape[0]
    last_hi = st[0]
    mask = (1 << 28) - 1
    for j in range(t.shape[0]):
        if k + 2 > cap:
            return -1
        tj = t[j]
        hi = tj >> 6
        if hi != last_hi:
            if last_hi >= 0:
                while hi - last_hi > mask:  # step so the decoder sees every 34-bit wrap
                    if k + 3 > cap:
                        return -1
                    last_hi += mask
                    out[k] = (0x8 << 28) | (last_hi & mask)
                    k += 1
            out[k] = (0x8 << 28) | (hi & mask)
            k += 1
            last_hi = hi
        out[k] = (
            ((np.int64(p[j]) & 1) << 28) | ((tj & 0x3F) << 22) | ((np.int64(x[j]) & 0x7FF) << 11) | (np.int64(y[j]) & 0x7FF)
        )
        k += 1
    st[0] = last_hi
    return k


class Evt2Reader(RawReader):
    """Reader of EVT 2.0 ``.raw`` files (see the module docstring for the decoding rules)."""

    format = "evt2"
    word_dtype = np.dtype("<u4")
    max_events_per_word = 1
    evt_version = "2.0"

    @staticmethod
    def _kernel():
        return _decode


class Evt2Writer(RawWriter):
    """Writer of EVT 2.0 ``.raw`` files with an OpenEB-style header (``% end``)."""

    format = "evt2"
    evt_version = "2.0"
    format_name = "EVT2"

    def _write(self, events: np.ndarray) -> None:
        x, y, t, p = events["x"], events["y"], events["t"], events["p"]
        saved = self._state.copy()
        out = np.empty(2 * len(events) + 2, np.uint32)
        k = _encode(x, y, t, p, out, self._state)
        if k < 0:  # gaps of hours need extra TIME_HIGH steps: size the output exactly
            self._state[:] = saved
            hi = t >> 6
            prev = saved[0] if saved[0] >= 0 else hi[0]
            extra = int((np.diff(hi, prepend=prev) // ((1 << 28) - 1)).sum())
            out = np.empty(2 * len(events) + extra + 2, np.uint32)
            k = _encode(x, y, t, p, out, self._state)
        out[:k].tofile(self._f)
