"""Out-of-scope across domains: how much of *another* sample dataset a skill refuses.

A skill trained on a few hundred utterances must not claim messages of another domain
("I want to take leave" sent to the small-talk FAQ). For each example skill the probe set is
the in-scope utterances (training and test files) of the other sample datasets, without
the intents that belong to the skill's own domain too (``OVERLAP``: office-zh has its own
IT intents, so the IT help-desk data is not another domain for it, and office-en is its
English twin); the share predicted ``oos`` is the figure (target: >= 80 %).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["OVERLAP", "SKILL_DATA", "cross_domain_rejection", "probe_texts"]

SAMPLES = ("office-zh", "office-en", "it-helpdesk-zh", "smalltalk-en")
SKILL_DATA = {
    "faq-en": "smalltalk-en",
    "hr-assistant": "office-zh",
    "it-helpdesk": "it-helpdesk-zh",
}
# (skill's dataset, other dataset) -> intents of the other dataset inside the skill's domain;
# None: the whole other dataset is the same domain (not a probe)
OVERLAP: dict[tuple[str, str], set[str] | None] = {
    ("office-zh", "office-en"): None,
    ("office-zh", "it-helpdesk-zh"): None,
    ("office-zh", "smalltalk-en"): {"holiday_calendar", "wifi_password_faq"},
    ("it-helpdesk-zh", "office-zh"): {"it_repair", "password_reset"},
    ("it-helpdesk-zh", "office-en"): {"it_repair", "password_reset"},
    ("it-helpdesk-zh", "smalltalk-en"): {"wifi_password_faq"},
}


def probe_texts(datasets: Path, own: str) -> dict[str, list[str]]:
    """Other-domain utterances per other sample dataset for a skill trained on ``own``."""
    from ..datasets import load

    out = {}
    for other in SAMPLES:
        if other == own or OVERLAP.get((own, other), set()) is None:
            continue
        skip = (OVERLAP.get((own, other)) or set()) | {"oos"}
        texts = []
        for f in ("utterances.csv", "test.csv"):
            d = load(Path(datasets) / other / f)
            texts += [t for t, i in zip(d.texts, d.intents, strict=True) if i not in skip]
        out[other] = texts
    return out


def cross_domain_rejection(decide, datasets: Path, own: str) -> dict[str, float]:
    """Share (%) of each other domain's probe utterances that ``decide(text).intent`` refuses."""
    return {
        other: round(100.0 * float(np.mean([decide(t).intent == "oos" for t in texts])), 1)
        for other, texts in probe_texts(datasets, own).items()
    }
