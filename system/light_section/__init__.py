"""Light-section 3D reconstruction: stripe extraction, triangulation, the scan procedure."""
