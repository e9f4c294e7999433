"""The runtime benchmarks' traffic draws (distinct never repeats, mixed is mostly new) and rounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from dingskill.runtime.traffic import draw, new_share, repeat_texts
from dingskill.text import detect_language

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "datasets"


@pytest.mark.parametrize("home", [None, Path("/nonexistent-data-home")], ids=["shared", "bare"])
def test_distinct_never_repeats_and_speaks_both_languages(home):
    if home is None and not (SHARED / "clinc150").is_dir():
        pytest.skip("../shared/datasets/clinc150 is not here")
    texts = draw("distinct", 4000, ROOT, data_home=home)
    assert len(texts) == 4000 and len(set(texts)) == 4000
    langs = [detect_language(t) for t in texts[:400]]
    assert langs.count("en") > 100 and sum(lang != "en" for lang in langs) > 100


def test_bare_clone_generates_past_its_own_datasets():
    # more messages than the project's own utterances: still none twice
    texts = draw("distinct", 30_000, ROOT, data_home=Path("/nonexistent-data-home"))
    assert len(set(texts)) == 30_000


def test_mixed_is_at_least_80_percent_new_with_zipf_like_repeats():
    texts = draw("mixed", 5000, ROOT)
    share = new_share(texts)
    assert 0.8 <= share <= 0.9
    counts: dict[str, int] = {}
    for t in texts:
        counts[t] = counts.get(t, 0) + 1
    top = sorted(counts.values(), reverse=True)
    assert top[0] >= 10 and top[0] > 3 * top[20]  # a few popular utterances, a long tail
    assert draw("mixed", 5000, ROOT) == texts  # seeded: the same draw every run


def test_repeat_cycles_the_test_utterances_and_bad_kind_is_named():
    base = repeat_texts(ROOT)
    assert draw("repeat", 2 * len(base), ROOT) == base + base
    with pytest.raises(ValueError, match="repeat, distinct, mixed"):
        draw("zipf", 10, ROOT)


def test_rounds_are_reported_each_and_by_their_median(capsys):
    """``dingskill bench runtime --rounds N``: every round's headline figures, their medians
    and the messages lost or duplicated in any round; a round count below 1 is refused."""
    from dingskill.cli.main import main
    from dingskill.runtime.benchmark import summarize_rounds

    rounds = [
        {"msgs_per_s": 1390.0, "echo_msgs_per_s": 1014.0, "ratio_msgs_per_s": 1.37, "lost": 0},
        {"msgs_per_s": 1449.0, "echo_msgs_per_s": 957.0, "ratio_msgs_per_s": 1.51, "lost": 1},
        {"msgs_per_s": 1200.0, "echo_msgs_per_s": 844.0, "ratio_msgs_per_s": 1.42, "lost": 0},
    ]
    out = summarize_rounds([{**r, "traffic": "distinct"} for r in rounds])
    assert out["median_ratio_msgs_per_s"] == 1.42 and out["median_msgs_per_s"] == 1390.0
    assert out["rounds"] == rounds and out["lost_total"] == 1 and out["duplicated_total"] == 0
    assert out["traffic"] == "distinct" and out["msgs_per_s"] == 1200.0  # the last round's
    with pytest.raises(ValueError, match="no rounds"):
        summarize_rounds([])
    assert main(["bench", "runtime", "--rounds", "0", "--json"]) == 2
    assert "--rounds must be at least 1, got 0" in capsys.readouterr().err
