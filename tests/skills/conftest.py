from __future__ import annotations

from pathlib import Path

import pytest
from dingskill.skills import Skill

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def hr() -> Skill:
    s = Skill.load(ROOT / "skills" / "hr-assistant")
    s.train()
    return s


@pytest.fixture(scope="session")
def faq() -> Skill:
    s = Skill.load(ROOT / "skills" / "faq-en")
    s.train()
    return s


@pytest.fixture(scope="session")
def helpdesk_skill() -> Skill:
    s = Skill.load(ROOT / "skills" / "it-helpdesk")
    s.train()
    return s
