"""``foveate bench``: run benchmarks and print a Markdown table for docs/benchmarks.md."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

from foveate.system.errors import FoveateError
from foveate.tools.bench.common import machine

NAME = "bench"
HELP = "run benchmarks (all, or by name) and print a Markdown table"


def _benchmarks() -> dict:
    from foveate.tools import bench

    out = {}
    for info in pkgutil.iter_modules(bench.__path__):
        mod = importlib.import_module(f"{bench.__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            out[mod.NAME] = mod
    return dict(sorted(out.items()))


def add_arguments(p) -> None:
    p.add_argument("names", nargs="*", default=["all"], metavar="NAME", help="benchmarks to run (default: all)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--quick", action="store_true", help="short runs (smoke test, not for docs)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")


def run(args) -> int:
    benches = _benchmarks()
    if args.list:
        for name, mod in benches.items():
            print(f"{name:<16} {mod.DESCRIPTION}")
        return 0
    names = list(benches) if "all" in args.names else args.names
    unknown = [n for n in names if n not in benches]
    if unknown:
        raise FoveateError(f"unknown benchmark '{unknown[0]}' (expected one of: {', '.join(benches)})")
    rows = []
    for name in names:
        rows.extend(benches[name].run(quick=args.quick))
    print(f"Machine: {machine()}\n")
    print("| benchmark | metric | value | unit | baseline | ratio | goal |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        print(f"| {r.benchmark} | {r.metric} | {r.value:g} | {r.unit} | {r.baseline} | {ratio} | {r.goal} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": [r.as_dict() for r in rows]}, indent=2))
    return 0
