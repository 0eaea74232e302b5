"""``foveate record``: work with run recordings (``foveate run --record DIR``)."""

from __future__ import annotations

import json
from pathlib import Path

NAME = "record"
HELP = "run recordings: verify"
DESCRIPTION = (
    "Run recordings (foveate run --record DIR). 'verify DIR' checks one: manifest, index, the size and "
    "sha256 of every chunk and (unless --quick) the record counts inside each chunk. It reports the "
    "intact chunks, whether the tail is truncated (crash, kill, power loss), the bytes on disk that "
    "cannot be trusted and the clock-time range that survives. Exit status: 0 intact, 1 damaged "
    "(readable up to the last intact chunk), 2 not a readable recording."
)


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="record_command", metavar="ACTION", required=True)
    v = sub.add_parser("verify", help="check a recording; exit 1 when damaged",
                       description="Check a run recording and report intact chunks, truncated tail, bytes lost "
                                   "and time range. Exit 0 intact, 1 damaged, 2 not a readable recording.")
    v.add_argument("dir", type=Path, metavar="DIR", help="recording folder (foveate run --record DIR)")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.add_argument("--quick", action="store_true",
                   help="check sizes and sha256 only, without opening the chunks")


def run(args) -> int:
    from foveate.system.search.verify import format_report, verify_recording

    report = verify_recording(args.dir, deep=not args.quick)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 1 if report["damaged"] else 0
