"""Light-section scenes of the digital twin: analytic 3D objects, a galvo-swept laser sheet, stripe images.

Everything here is ground truth: surfaces are intersected in closed form (or to
1e-9 mm for the free-form patch), so a reconstruction can be scored against
the exact geometry. Units are mm; the rig frame is x right, y down, z forward.
"""
