"""``foveate devices``: open every device of a rig and print its status."""

from __future__ import annotations

import json

from foveate.system.config import load_rig
from foveate.system.registry import resolve_backend
from foveate.system.rig import Rig
from foveate.tools.argtypes import nonnegative_float

NAME = "devices"
HELP = "open every device of the rig and print its status"


def add_arguments(p) -> None:
    p.add_argument("--config", metavar="RIG", help="rig YAML file (default: the embedded simulated rig)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--list", action="store_true",
                   help="only check the rig file and list its devices and backends; open nothing")
    p.add_argument("--sync-seconds", type=nonnegative_float, default=0.0, metavar="S",
                   help="poll the devices that have their own clock (serial galvo, GenICam, live event cameras) "
                        "for S seconds of rig time before reporting, so their clock sync also estimates drift "
                        "(default: 0, the sync burst at open only)")


def _exercise(rig: Rig, seconds: float) -> None:
    """Poll the devices that have a clock of their own for ``seconds`` of rig time (positions, frames, packets)."""
    if seconds <= 0:
        return
    timed = [dev for dev in rig.devices.values() if "sync" in dev.status()]
    end = rig.clock.now_ns() + int(seconds * 1e9)
    while timed and rig.clock.now_ns() < end:
        for dev in timed:
            if dev.kind == "galvo":
                dev.position()
            elif dev.kind in ("frame_camera", "event_camera"):
                dev.read(timeout_s=1.0)
        rig.clock.sleep_s(0.02)


def sync_text(st: dict) -> str:
    """One line on how a device's timestamps relate to the host clock, with the residual sync error."""
    sync = st.get("sync")
    if isinstance(sync, dict) and sync.get("samples"):
        parts = [f"offset {sync['offset_us']:.1f} us", f"drift {sync['drift_ppm']:+.2f} ppm",
                 f"{sync['samples']} samples"]
        if "half_rtt_us" in sync:
            parts.append(f"half round trip {sync['half_rtt_us']:.1f} us")
        res = sync.get("residual_us")
        return f"residual sync error {res:.2f} us ({', '.join(parts)})" if res is not None else ", ".join(parts)
    return "no device clock: stamped on the rig clock (residual sync error 0 by construction)"


def _list(args) -> int:
    cfg = load_rig(args.config)
    rows = {}
    for name, dev in cfg.devices.items():
        cls = resolve_backend(dev.kind, dev.backend, f"{cfg.source}: devices.{name}.backend")
        settings = cls.Settings.model_validate(dev.settings).model_dump(mode="json")
        rows[name] = {"kind": dev.kind, "backend": dev.backend, "class": f"{cls.__module__}:{cls.__name__}",
                      "role": dev.role, "settings": settings}
    if args.json:
        print(json.dumps({"rig": cfg.name, "source": cfg.source, "devices": rows}, indent=2))
        return 0
    clock = "simulated" if cfg.simulated else "realtime"
    print(f"rig {cfg.name}  ({cfg.source})  clock: {clock}  (listed, not opened)")
    for name, r in rows.items():
        print(f"  {name:<14} {r['kind']:<13} {r['backend']:<8} {r['class']:<55} role={r['role'] or '-'}")
    return 0


def run(args) -> int:
    if args.list:
        return _list(args)
    rig = Rig.from_file(args.config)
    with rig:
        _exercise(rig, args.sync_seconds)
        status = rig.status()
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    print(f"rig {status['rig']}  ({status['source']})  clock: {status['clock']}")
    worst = None
    for name, st in status["devices"].items():
        details = ", ".join(f"{k}={v}" for k, v in st.items() if k not in ("name", "kind", "backend", "open", "sync"))
        print(f"  {name:<14} {st['kind']:<13} {st['backend']:<18} {'open' if st['open'] else 'CLOSED'}  {details}")
        print(f"  {'':<14} sync: {sync_text(st)}")
        res = (st.get("sync") or {}).get("residual_us")
        if res is not None and (worst is None or res > worst[1]):
            worst = (name, res)
    if worst:
        print(f"worst residual sync error: {worst[1]:.2f} us ({worst[0]})")
    return 0
