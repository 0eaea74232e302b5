"""EVT 3.0 / EVT 2.0 decoding rules on hand-written word sequences (the specification, word by word)."""

from __future__ import annotations

import numpy as np
import pytest

from foveate.system.events import open_events

HEADER3 = b"% evt 3.0\n% format EVT3;height=720;width=1280\n% end\n"
HEADER2 = b"% evt 2.0\n% format EVT2;height=480;width=640\n% end\n"


def raw3(tmp_path, words, name="w.raw"):
    p = tmp_path / name
    p.write_bytes(HEADER3 + np.asarray(words, "<u2").tobytes())
    return p


def raw2(tmp_path, words, name="w2.raw"):
    p = tmp_path / name
    p.write_bytes(HEADER2 + np.asarray(words, "<u4").tobytes())
    return p


def decode(p):
    r = open_events(p)
    ev = r.read_all()
    return r, [(int(e["x"]), int(e["y"]), int(e["t"]), int(e["p"])) for e in ev]


def test_evt3_addr_time_and_vectors(tmp_path):
    words = [
        0x8000 | 0x001,  # TIME_HIGH 1 -> t = 4096
        0x6000 | 0x005,  # TIME_LOW 5 -> t = 4101
        0x0000 | 7,  # ADDR_Y 7
        0x2000 | (1 << 11) | 100,  # ADDR_X 100 pol 1
        0x3000 | 200,  # VECT_BASE_X 200 pol 0
        0x4000 | 0b100000000101,  # VECT_12: 200, 202, 211
        0x5000 | 0b10000001,  # VECT_8 at base 212: 212, 219
        0x2000 | 5,  # ADDR_X 5 pol 0
    ]
    r, ev = decode(raw3(tmp_path, words))
    assert ev == [(100, 7, 4101, 1), (200, 7, 4101, 0), (202, 7, 4101, 0), (211, 7, 4101, 0), (212, 7, 4101, 0),
                  (219, 7, 4101, 0), (5, 7, 4101, 0)]
    assert r.stats.unknown_words == 0


def test_evt3_cut_short_vector_group_stays_right(tmp_path):
    """OpenEB #111: VECT_12, VECT_12 without the VECT_8; the next TIME_HIGH is not a mask."""
    words = [0x8000, 0x6001, 0x0000, 0x2000, 0x300A, 0x4001, 0x4000, 0x80FF, 0x2001]
    _, ev = decode(raw3(tmp_path, words))
    assert ev == [(0, 0, 1, 0), (10, 0, 1, 0), (1, 0, (0xFF << 12) | 1, 0)]


def test_evt3_time_high_wrap_is_monotonic(tmp_path):
    """The 24-bit base wraps every 16.777216 s: a lower TIME_HIGH adds 1 << 24."""
    words = [0x8FFF, 0x6FFF, 0x0001, 0x2002, 0x8000, 0x6000, 0x2003, 0x8001, 0x2004, 0x8FFE, 0x8002, 0x2005]
    _, ev = decode(raw3(tmp_path, words))
    t = [e[2] for e in ev]
    assert t == [0xFFFFFF, 1 << 24, (1 << 24) + 4096, (2 << 24) + 2 * 4096]
    assert all(a <= b for a, b in zip(t, t[1:]))


def test_evt3_time_low_step_back_is_kept_not_clamped(tmp_path):
    words = [0x8001, 0x6010, 0x0000, 0x2001, 0x600F, 0x2002]
    _, ev = decode(raw3(tmp_path, words))
    assert [e[2] for e in ev] == [4096 + 16, 4096 + 15]


def test_evt3_events_before_time_base_are_dropped_and_counted(tmp_path):
    words = [0x0003, 0x2001, 0x3000, 0x4007, 0x8002, 0x2009]
    r, ev = decode(raw3(tmp_path, words))
    assert ev == [(9, 3, 2 << 12, 0)]
    assert r.stats.events_before_time_base == 4


def test_evt3_padding_others_triggers_and_unknown_words(tmp_path):
    words = [0x8001, 0x9999, 0x6002, 0xA000 | (3 << 8) | 1, 0x7ABC, 0xE123, 0xF456, 0x1234, 0x0004, 0x2008, 0xB000, 0xC000]
    p = raw3(tmp_path, words)
    r, ev = decode(p)
    assert ev == [(8, 4, 4098, 0)]
    assert r.stats.unknown_words == 3
    assert r.stats.first_unknown_offset == len(HEADER3) + 2 * 7
    assert r.stats.skipped_words == 4  # padding, CONTINUED_4, OTHERS, CONTINUED_12
    trig = r.triggers()
    assert trig.tolist() == [(4098, 3, 1)]


def test_evt2_words(tmp_path):
    th = lambda v: (0x8 << 28) | v  # noqa: E731
    cd = lambda p, tl, x, y: (p << 28) | (tl << 22) | (x << 11) | y  # noqa: E731
    words = [
        cd(1, 3, 9, 9),  # before the first TIME_HIGH: dropped
        th(10),
        cd(1, 5, 639, 479),
        cd(0, 63, 0, 1),
        (0xA << 28) | (7 << 22) | (1 << 8) | 1,  # trigger channel 1 rising
        (0xE << 28) | 5,  # OTHERS: skipped
        (0x3 << 28),  # undefined: unknown
        th(11),
        cd(0, 0, 2, 3),
    ]
    r, ev = decode(raw2(tmp_path, words))
    assert ev == [(639, 479, 645, 1), (0, 1, 703, 0), (2, 3, 704, 0)]
    assert r.stats.events_before_time_base == 1
    assert r.stats.unknown_words == 1 and r.stats.skipped_words == 1
    assert r.stats.first_unknown_offset == len(HEADER2) + 4 * 6
    assert r.triggers().tolist() == [(647, 1, 1)]


def test_evt2_time_high_wrap(tmp_path):
    words = [(0x8 << 28) | 0xFFFFFFF, (1 << 28) | (63 << 22), (0x8 << 28) | 0, (1 << 28)]
    _, ev = decode(raw2(tmp_path, words))
    assert [e[2] for e in ev] == [(1 << 34) - 1, 1 << 34]


def test_faery_t0_header_is_applied(tmp_path):
    p = tmp_path / "t0.raw"
    p.write_bytes(b"% evt 3.0\n% geometry 64x64\n% t0 1000000\n" + np.array([0x8000, 0x6005, 0x0001, 0x2002], "<u2").tobytes())
    _, ev = decode(p)
    assert ev == [(2, 1, 1_000_005, 0)]


@pytest.mark.parametrize("chunk", [1, 2, 5, 13])
def test_evt3_state_carries_across_chunks(tmp_path, real_path, chunk):
    p = real_path("evt3_sample.raw")
    ref = open_events(p).read_all()[:3000]
    # a small file: the first words of the real recording, decoded with tiny output chunks
    with open_events(p, chunk_events=chunk) as r:
        got = []
        n = 0
        for c in r.chunks():
            got.append(c)
            n += len(c)
            if n >= 3000:
                break
    np.testing.assert_array_equal(np.concatenate(got)[:3000], ref)


def test_binary_starting_with_percent_after_header_without_end(tmp_path):
    """Older files have no '% end'; their first data byte may be 0x25 ('%'): it is data, not header."""
    p = tmp_path / "pct.raw"
    words = [0x8001, 0x6002, 0x0025, 0x2003]  # ADDR_Y 37 begins with the byte 0x25
    body = np.array(words[2:], "<u2").tobytes()
    assert body[:1] == b"%"
    p.write_bytes(b"% evt 3.0\n% geometry 64x64\n" + np.array(words[:2], "<u2").tobytes() + body)
    # here the data starts with TIME_HIGH; now make it start with the '%' byte itself
    q = tmp_path / "pct2.raw"
    q.write_bytes(b"% evt 3.0\n% geometry 64x64\n" + body + np.array([0x8001, 0x6002, 0x2004], "<u2").tobytes())
    _, ev = decode(p)
    assert ev == [(3, 37, 4098, 0)]
    r, ev = decode(q)
    assert r.header.data_offset == len(b"% evt 3.0\n% geometry 64x64\n")
    assert ev == [(4, 37, 4098, 0)]
