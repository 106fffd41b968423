"""Numba planning kernels, the planner, controllers, the safety envelope and the expert."""
