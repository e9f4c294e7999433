"""Small skills refuse other domains: each example skill predicts ``oos`` for at least 80 %
of the other sample datasets' utterances (see dingskill.evaluation.cross_domain), and the
faq-en skill no longer answers "I want to take leave" with ``goodbye``."""

from __future__ import annotations

from pathlib import Path

import pytest
from dingskill.evaluation.cross_domain import SKILL_DATA, cross_domain_rejection

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = {"faq-en": "faq", "hr-assistant": "hr", "it-helpdesk": "helpdesk_skill"}
# the skill's own held-out accuracy with the previous default (WordLlama block, no gate):
# the encoder block and the gate must not lose any of it
OWN_BEFORE = {"faq-en": 0.918, "hr-assistant": 0.938, "it-helpdesk": 0.92}


@pytest.mark.parametrize("name", sorted(SKILL_DATA))
def test_each_skill_refuses_other_domains_and_keeps_its_accuracy(name, request):
    skill = request.getfixturevalue(FIXTURE[name])
    rejected = cross_domain_rejection(skill.decide, ROOT / "datasets", SKILL_DATA[name])
    assert rejected and min(rejected.values()) >= 80.0, rejected
    own = skill.evaluate(sweep=False).summary["in_scope_accuracy"]
    assert own >= OWN_BEFORE[name], own


def test_faq_does_not_answer_a_leave_request(faq):
    for text in ("I want to take leave", "我想请三天年假", "reset my VPN token please"):
        assert faq.decide(text).intent == "oos", (text, faq.decide(text))
    assert faq.decide("bye, see you tomorrow").intent == "goodbye"
