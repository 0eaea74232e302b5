"""Light-section calibration: the dynamic laser model, laser-plane and joint calibration."""
