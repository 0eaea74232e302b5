"""Which INT8 kernels this CPU runs correctly.

On x86 without VNNI, onnxruntime's U8S8 convolution/GEMM kernels use ``VPMADDUBSW``, whose
16-bit intermediate sums of two u8×s8 products saturate: results are silently wrong unless
weights use 7 bits (``reduce_range``) or both operands are unsigned (U8U8). With VNNI
(AVX512-VNNI or AVX-VNNI) the 32-bit dot-product instructions do not saturate. ARM is
unaffected. ``foveate.models.quant.check`` verifies the choice numerically on the model.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class CpuInt8:
    arch: str
    flags: frozenset[str]

    @property
    def x86(self) -> bool:
        return self.arch in ("x86_64", "amd64", "i386", "i686")

    @property
    def vnni(self) -> bool:
        return bool(self.flags & set(VNNI_FLAGS))

    @property
    def needs_reduce_range(self) -> bool:
        """True on x86 without VNNI (u8×s8 pairs can saturate 16 bits)."""
        return self.x86 and not self.vnni

    def describe(self) -> str:
        if not self.x86:
            return f"{self.arch}: no u8s8 saturation issue"
        simd = "avx512f" if "avx512f" in self.flags else "avx2" if "avx2" in self.flags else "sse"
        vn = [f for f in VNNI_FLAGS if f in self.flags]
        return f"{self.arch} {simd}, " + (f"VNNI ({', '.join(vn)}): full 8-bit weights are safe" if vn
                                          else "no VNNI: 7-bit weights (reduce_range) needed")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") or line.startswith("Features"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def detect(cpuinfo: str | Path = "/proc/cpuinfo") -> CpuInt8:
    return CpuInt8(platform.machine().lower(), cpu_flags(cpuinfo))
