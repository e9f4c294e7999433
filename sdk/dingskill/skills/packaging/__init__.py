"""dingskill.skills.packaging."""
