"""The search system: panoramic probability map, probability search, tracking, scheduling, recording.

Modules: ``settings`` (the rig file's ``search:`` section), ``geometry`` (mirror
commands <-> wide and search pixels), ``ppm`` (the probability map on the
mirror-command grid), ``planner`` (view sampling and travel-time ordering),
``baselines`` (raster and random planners), ``tracker`` (Kalman tracks in
command space), ``stages``/``stats`` (pipelined work and latency
histograms), ``scheduler`` (the real-time loop), ``evaluation`` (metrics
against ground truth, when a twin provides it), ``report`` (summary and
pictures), ``recorder``/``replay`` (crash-safe recordings and offline re-runs).
See docs/search.md.
"""
