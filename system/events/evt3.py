"""Prophesee EVT 3.0 ``.raw``: 16-bit stateful words, vectorised CD events.

Decoding follows the EVT 3.0 specification word by word (a numba kernel):

- ``EVT_ADDR_Y 0x0`` sets the row; ``EVT_ADDR_X 0x2`` emits one event;
  ``VECT_BASE_X 0x3`` sets base x and polarity; ``VECT_12 0x4`` / ``VECT_8 0x5``
  emit one event per set mask bit and advance base x by 12 / 8. Each vector
  word is decoded on its own, so a group cut short (OpenEB #111) stays right.
- ``EVT_TIME_HIGH 0x8`` replaces time bits 23..12, ``EVT_TIME_LOW 0x6`` bits
  11..0. The 24-bit time base wraps every 16.777216 s: a TIME_HIGH lower than
  the previous one adds ``1 << 24``, so time decodes monotonically. TIME_LOW
  is taken as given (never clamped), as the specification says.
- CD events before the first TIME_HIGH have no time base and are dropped
  (counted in ``stats.events_before_time_base``), as OpenEB does.
- ``EXT_TRIGGER 0xA`` goes to :meth:`~EvtReader.triggers`; ``CONTINUED_4 0x7``,
  ``IMU 0xD``, ``OTHERS 0xE``, ``CONTINUED_12 0xF`` and the padding word
  ``0x9`` (``0x9999`` on some cameras) are skipped and counted; the other,
  reserved types are skipped and counted as unknown, with the byte offset of
  the first one.

The writer emits TIME_HIGH when bits 23..12 change (stepping through long
gaps so every wrap is seen), TIME_LOW when the time changes, ADDR_Y when the
row changes and one ADDR_X per event; independent decoders (``evt3``,
``evlib``) read it back exactly.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from foveate.system.events._raw import (
    CNT_BEFORE_TB,
    CNT_FIRST_UNKNOWN,
    CNT_PADDING,
    CNT_SKIPPED,
    CNT_UNKNOWN,
    RawReader,
    RawWriter,
)

# decoder state slots
_Y, _BX, _POL, _TH, _TL, _OVF, _HAS_TB = range(7)
# trailing-zero count of every 12-bit mask (vector words)
_CTZ = np.array([(m & -m).bit_length() - 1 if m else 0 for m in range(4096)], np.int64)


@njit(cache=True, nogil=True)
def _decode(words, i, out, n_out, trig, st, cnt, word_base):  # pragma: no cover - compiled
    ox = out["x"]
    oy = out["y"]
    ot = out["t"]
    op = out["p"]
    size = out.shape[0]
    tcap = trig.shape[0]
    n_trig = 0
    y = st[_Y]
    bx = st[_BX]
    pol = st[_POL]
    th = st[_TH]
    tl = st[_TL]
    ovf = st[_OVF]
    has_tb = st[_HAS_TB]
    t = (ovf << 24) | (th << 12) | tl
    before_tb = 0
    n = words.shape[0]
    while i < n:
        # words that cannot overflow the outputs (12 events / 1 trigger per word at most): no checks inside
        room = min((size - n_out) // 12, tcap - n_trig)
        if room <= 0:
            break
        stop = min(n, i + room)
        for i in range(i, stop):
            w = np.int64(words[i])
            typ = w >> 12
            if (typ | 2) == 2:  # EVT_ADDR_X (2) or EVT_ADDR_Y (0), 90 % of real words: no inner branch
                # the event slot is written either way (ADDR_Y's write is overwritten later) and
                # kept only for ADDR_X with a time base, so the two interleaved types never mispredict
                v = w & 0x7FF
                is_x = typ >> 1
                ox[n_out] = v
                oy[n_out] = y
                ot[n_out] = t
                op[n_out] = (w >> 11) & 1
                n_out += is_x & has_tb
                before_tb += is_x & (1 - has_tb)
                y = y + (v - y) * (1 - is_x)
            elif typ == 0x6:  # EVT_TIME_LOW
                tl = w & 0xFFF
                t = (ovf << 24) | (th << 12) | tl
            elif typ == 0x4:  # VECT_12
                m = w & 0xFFF
                if has_tb:
                    while m:
                        ox[n_out] = bx + _CTZ[m]
                        oy[n_out] = y
                        ot[n_out] = t
                        op[n_out] = pol
                        n_out += 1
                        m &= m - 1
                else:
                    while m:
                        cnt[3] += 1
                        m &= m - 1
                bx += 12
            elif typ == 0x5:  # VECT_8
                m = w & 0xFF
                if has_tb:
                    while m:
                        ox[n_out] = bx + _CTZ[m]
                        oy[n_out] = y
                        ot[n_out] = t
                        op[n_out] = pol
                        n_out += 1
                        m &= m - 1
                else:
                    while m:
                        cnt[3] += 1
                        m &= m - 1
                bx += 8
            elif typ == 0x3:  # VECT_BASE_X
                bx = w & 0x7FF
                pol = (w >> 11) & 1
            elif typ == 0x8:  # EVT_TIME_HIGH
                v = w & 0xFFF
                if has_tb and v < th:
                    ovf += 1
                th = v
                has_tb = 1
                t = (ovf << 24) | (th << 12) | tl
            elif typ == 0xA:  # EXT_TRIGGER
                if has_tb:
                    trig[n_trig]["t"] = t
                    trig[n_trig]["id"] = (w >> 8) & 0xF
                    trig[n_trig]["value"] = w & 1
                    n_trig += 1
            elif typ == 0x9:  # padding (0x9999 on some cameras)
                cnt[4] += 1
            elif typ == 0x7 or typ == 0xD or typ == 0xE or typ == 0xF:
                cnt[0] += 1
            else:
                cnt[1] += 1
                if cnt[2] < 0:
                    cnt[2] = word_base + i
        i = stop
    cnt[3] += before_tb
    st[_Y] = y
    st[_BX] = bx
    st[_POL] = pol
    st[_TH] = th
    st[_TL] = tl
    st[_OVF] = ovf
    st[_HAS_TB] = has_tb
    return i, n_out, n_trig


assert (CNT_SKIPPED, CNT_UNKNOWN, CNT_FIRST_UNKNOWN, CNT_BEFORE_TB, CNT_PADDING) == (0, 1, 2, 3, 4)


@njit(cache=True, nogil=True)
def _encode(x, y, t, p, out, st):  # pragma: no cover - compiled
    """Encode sorted events; ``st`` = [last t>>12, last t, last y] (-1 = none).

    Returns the words written, or -1 if ``out`` is too small (``st`` is then partly updated).
    """
    k = 0
    cap = out.shape[0]
    last_hi = st[0]
    last_t = st[1]
    last_y = st[2]
    for j in range(t.shape[0]):
        if k + 4 > cap:
            return -1
        tj = t[j]
        hi = tj >> 12
        if hi != last_hi:
            if last_hi >= 0:
                while hi - last_hi > 4095:  # step so the decoder sees every 24-bit wrap
                    if k + 5 > cap:
                        return -1
                    last_hi += 4095
                    out[k] = 0x8000 | (last_hi & 0xFFF)
                    k += 1
            out[k] = 0x8000 | (hi & 0xFFF)
            k += 1
            last_hi = hi
            last_t = -1
        if tj != last_t:
            out[k] = 0x6000 | (tj & 0xFFF)
            k += 1
            last_t = tj
        yj = np.int64(y[j])
        if yj != last_y:
            out[k] = yj & 0x7FF
            k += 1
            last_y = yj
        out[k] = 0x2000 | ((np.int64(p[j]) & 1) << 11) | (np.int64(x[j]) & 0x7FF)
        k += 1
    st[0] = last_hi
    st[1] = last_t
    st[2] = last_y
    return k


class Evt3Reader(RawReader):
    """Reader of EVT 3.0 ``.raw`` files (see the module docstring for the decoding rules)."""

    format = "evt3"
    word_dtype = np.dtype("<u2")
    max_events_per_word = 12
    evt_version = "3.0"

    @staticmethod
    def _kernel():
        return _decode


class Evt3Writer(RawWriter):
    """Writer of EVT 3.0 ``.raw`` files with an OpenEB-style header (``% end``)."""

    format = "evt3"
    evt_version = "3.0"
    format_name = "EVT3"

    def _write(self, events: np.ndarray) -> None:
        x, y, t, p = events["x"], events["y"], events["t"], events["p"]
        saved = self._state.copy()
        out = np.empty(4 * len(events) + 4, np.uint16)
        k = _encode(x, y, t, p, out, self._state)
        if k < 0:  # gaps over 16.8 s need extra TIME_HIGH steps: size the output exactly
            self._state[:] = saved
            hi = t >> 12
            prev = saved[0] if saved[0] >= 0 else hi[0]
            extra = int((np.diff(hi, prepend=prev) // 4095).sum())
            out = np.empty(4 * len(events) + extra + 4, np.uint16)
            k = _encode(x, y, t, p, out, self._state)
        out[:k].tofile(self._f)
