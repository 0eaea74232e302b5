"""``foveate devices``: open every device of a rig and print its status."""

from __future__ import annotations

import json

from foveate.system.rig import Rig

NAME = "devices"
HELP = "open every device of the rig and print its status"


def add_arguments(p) -> None:
    p.add_argument("--config", metavar="RIG", help="rig YAML file (default: the embedded simulated rig)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")


def run(args) -> int:
    rig = Rig.from_file(args.config)
    with rig:
        status = rig.status()
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    print(f"rig {status['rig']}  ({status['source']})  clock: {status['clock']}")
    for name, st in status["devices"].items():
        details = ", ".join(f"{k}={v}" for k, v in st.items() if k not in ("name", "kind", "backend", "open"))
        print(f"  {name:<14} {st['kind']:<13} {st['backend']:<18} {'open' if st['open'] else 'CLOSED'}  {details}")
    return 0
