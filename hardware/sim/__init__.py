"""The digital twin: a simulated world seen by simulated devices on one clock.

Runtime code never imports this package; rig files select it with
``backend: sim`` through ``foveate.system.registry``.
"""
