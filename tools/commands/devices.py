"""``foveate devices``: open every device of a rig and print its status."""

from __future__ import annotations

import json

from foveate.system.rig import Rig

NAME = "devices"
HELP = "open every device of the rig and print its status"


def add_arguments(p) -> None:
    p.add_argument("--config", metavar="RIG", help="rig YAML file (default: the embedded simulated rig)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--sync-seconds", type=float, default=0.0, metavar="S",
                   help="exercise the devices for S seconds of rig time before reporting, so the clock sync of "
                        "devices with their own clock (serial galvo, GenICam, live event cameras) also estimates "
                        "drift (default: 0, the sync burst at open only)")


def _exercise(rig: Rig, seconds: float) -> None:
    """Poll every device for ``seconds`` of rig time (galvo positions, frames, event packets)."""
    if seconds <= 0:
        return
    end = rig.clock.now_ns() + int(seconds * 1e9)
    while rig.clock.now_ns() < end:
        for dev in rig.devices.values():
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


def run(args) -> int:
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
