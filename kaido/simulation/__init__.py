"""The Backend interface, its embedded/CARLA/replay backends, episode runner and metrics."""
