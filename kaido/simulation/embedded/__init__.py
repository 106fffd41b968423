"""The embedded simulator: no server; roads from OpenDRIVE, traffic from SUMO, sensors from a
ray caster."""
