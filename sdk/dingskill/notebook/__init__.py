"""dingskill.notebook."""
