"""dingskill.runtime."""
