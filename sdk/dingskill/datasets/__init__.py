"""dingskill.datasets."""
