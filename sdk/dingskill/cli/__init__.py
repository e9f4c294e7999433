"""dingskill.cli."""
