"""dingskill.evaluation."""
