"""The CARLA backend (a real ``carla==0.9.16`` server) and kaido's Leaderboard 2.0 agent.

``convert`` holds the conversions at the CARLA boundary, ``backend`` the :class:`CarlaBackend`,
``leaderboard_agent`` the module handed to the leaderboard evaluator.
"""
