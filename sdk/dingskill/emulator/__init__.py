"""A local DingTalk Stream-mode emulator (stand-alone: imports nothing else of dingskill)."""

from .client import EmulatorClient
from .frames import CARD_CALLBACK_TOPIC, EVENT_TOPIC, GRAPH_TOPIC, ROBOT_TOPIC, RobotMessage
from .server import Emulator
from .state import RobotDelivery

__all__ = [
    "CARD_CALLBACK_TOPIC",
    "EVENT_TOPIC",
    "GRAPH_TOPIC",
    "ROBOT_TOPIC",
    "Emulator",
    "EmulatorClient",
    "RobotDelivery",
    "RobotMessage",
]
