"""Blosc-compressed HDF5 chunks decompressed outside HDF5's filter pipeline.

DSEC ``events.h5`` (and the project's ``.fev.h5``) store each event field as
a 1-D dataset compressed with the Blosc HDF5 filter (id 32001, from
``hdf5plugin``). Through HDF5 every chunk is decompressed into HDF5's own
buffer, copied into the caller's, and all of it runs under h5py's global lock,
so one field at a time. Here the raw chunk bytes come from
``DatasetID.read_direct_chunk`` (HDF5 still resolves the chunk's address) and
are decompressed by the same c-blosc library ``hdf5plugin`` registers
(``blosc_decompress_ctx`` through ctypes, which releases the GIL) straight
into the caller's buffer: no extra copy, and several threads can decompress
at once.

Anything this path does not handle (another filter pipeline, a chunk whose
filter was skipped or that was never written, a chunk that fails Blosc's header check or decompresses
to an unexpected size) makes :meth:`BloscField.read_into` return ``False``;
the caller then reads those events through HDF5, which raises its own error
on corrupt data.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

#: HDF5 filter id of Blosc (``hdf5plugin.BLOSC_ID``)
BLOSC_FILTER_ID = 32001


@functools.cache
def _blosc_lib():
    """``(blosc_decompress_ctx, blosc_cbuffer_validate)`` from hdf5plugin's Blosc filter library, or None."""
    try:
        import hdf5plugin

        path = hdf5plugin.get_config().registered_filters.get("blosc")
        lib = ctypes.CDLL(path) if path else None
        decompress = lib.blosc_decompress_ctx if lib is not None else None
        validate = lib.blosc_cbuffer_validate if lib is not None else None
    except (ImportError, OSError, AttributeError):
        return None
    if decompress is None or validate is None:
        return None
    # int blosc_decompress_ctx(const void *src, void *dest, size_t destsize, int numinternalthreads)
    decompress.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    decompress.restype = ctypes.c_int
    # int blosc_cbuffer_validate(const void *cbuffer, size_t cbytes, size_t *nbytes)
    validate.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    validate.restype = ctypes.c_int
    return decompress, validate


class BloscField:
    """Direct chunk reader of one 1-D, chunked, Blosc-only HDF5 dataset (see the module doc)."""

    def __init__(self, ds) -> None:
        self._id = ds.id
        self.n = int(ds.shape[0])
        self.chunk = int(ds.chunks[0])
        self.itemsize = ds.dtype.itemsize
        self.chunk_bytes = self.chunk * self.itemsize
        self._decompress, self._validate = _blosc_lib()

    @staticmethod
    def usable(ds) -> bool:
        """True when ``ds`` is 1-D, chunked, filtered by Blosc alone, and the Blosc library loads."""
        if ds.ndim != 1 or ds.chunks is None or _blosc_lib() is None:
            return False
        plist = ds.id.get_create_plist()
        return plist.get_nfilters() == 1 and plist.get_filter(0)[0] == BLOSC_FILTER_ID

    def read_into(self, dest: np.ndarray, a: int, b: int, scratch: np.ndarray) -> bool:
        """Elements ``a..b`` into ``dest[:b - a]`` (``dest`` contiguous, of the dataset's dtype).

        Chunks that lie wholly inside ``dest`` (room for a whole chunk included) are decompressed
        in place; the others go through ``scratch`` (one chunk). ``False``: a chunk could not be
        decoded this way, read these events through HDF5 instead.
        """
        c, cb = self.chunk, self.chunk_bytes
        nbytes = ctypes.c_size_t(0)
        base = dest.ctypes.data
        for cs in range((a // c) * c, b, c):
            try:
                mask, raw = self._id.read_direct_chunk((cs,))
            except (RuntimeError, OSError, ValueError):  # e.g. a chunk never written (HDF5 gives fill values)
                return False
            if mask != 0 or self._validate(raw, len(raw), ctypes.byref(nbytes)) < 0 or nbytes.value != cb:
                return False
            if cs >= a and (cs - a + c) <= dest.shape[0]:
                if self._decompress(raw, base + (cs - a) * self.itemsize, cb, 1) != cb:
                    return False
                continue
            if self._decompress(raw, scratch.ctypes.data, cb, 1) != cb:
                return False
            lo, hi = max(a, cs), min(b, cs + c)
            dest[lo - a : hi - a] = scratch[lo - cs : hi - cs]
        return True
