"""kaido (街道, "highway"): an autonomous-driving perception-to-planning stack."""

__version__ = "0.1.0"
