"""dingskill.nlu."""
