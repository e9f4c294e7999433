"""A local DingTalk Stream-mode emulator (stand-alone: imports nothing else of dingskill)."""

from .client import EmulatorClient
from .frames import ROBOT_TOPIC
from .server import Emulator

__all__ = ["ROBOT_TOPIC", "Emulator", "EmulatorClient"]
