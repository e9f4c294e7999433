"""dingskill.emulator."""
