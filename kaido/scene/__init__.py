"""Shared vocabulary: geometry, sensors and frames, agents, road maps and routes."""
