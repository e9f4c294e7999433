"""dingskill.skills."""
