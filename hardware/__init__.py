"""The rig, real and virtual: the simulated twin, rig YAML files, protocol specs."""
