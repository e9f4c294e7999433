"""Fixtures for the NLU tests: small Chinese / English intent data and the office datasets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

ZH = {
    "ask_leave": [
        "我想请假",
        "明天请一天假",
        "下周请两天年假",
        "帮我请个病假",
        "想请半天事假",
        "后天家里有事要请假",
        "我要请婚假",
        "请假流程怎么走",
    ],
    "book_room": [
        "帮我订个会议室",
        "预订明天下午的会议室",
        "订一间能坐十人的会议室",
        "三楼会议室下午有空吗",
        "我要预约会议室开会",
        "会议室订到周五上午",
        "帮忙约个小会议室",
        "订会议室两点到四点",
    ],
    "expense": [
        "我要报销差旅费",
        "报销单怎么填",
        "出差的发票怎么报销",
        "提交报销申请",
        "打车费可以报销吗",
        "报销进度查一下",
        "餐费报销流程",
        "帮我报销上周的机票",
    ],
}
EN = {
    "ask_leave": [
        "i want to take a day off",
        "request leave for tomorrow",
        "i need two days of annual leave",
        "apply for sick leave",
        "can i take half a day off",
        "book vacation next week",
        "submit a leave request",
        "how do i ask for time off",
    ],
    "book_room": [
        "book a meeting room",
        "reserve the conference room for 3pm",
        "i need a room for ten people",
        "is the small meeting room free this afternoon",
        "schedule a room for our standup",
        "reserve a room on friday morning",
        "find me a free meeting room",
        "book room b from two to four",
    ],
    "expense": [
        "submit my travel expenses",
        "how do i file an expense claim",
        "reimburse my taxi receipt",
        "claim the hotel invoice",
        "where is my reimbursement",
        "expense report for the trip",
        "get refunded for the client dinner",
        "file expenses for last week's flight",
    ],
}
OOS_ZH = [
    "今天天气怎么样",
    "讲个笑话",
    "股票涨了吗",
    "推荐一部电影",
    "你喜欢吃什么",
    "帮我算一下圆周率",
]
OOS_EN = [
    "what's the weather like",
    "tell me a joke",
    "who won the game last night",
    "recommend a movie",
    "what is your favourite food",
    "how tall is mount everest",
]


def _rows(data: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for intent, utts in data.items():
        texts += utts
        labels += [intent] * len(utts)
    return texts, labels


@pytest.fixture
def zh_data() -> tuple[list[str], list[str]]:
    return _rows(ZH)


@pytest.fixture
def en_data() -> tuple[list[str], list[str]]:
    return _rows(EN)


@pytest.fixture
def mixed_data() -> tuple[list[str], list[str]]:
    t1, l1 = _rows(ZH)
    t2, l2 = _rows(EN)
    return t1 + t2, l1 + l2


@pytest.fixture
def oos_texts() -> dict[str, list[str]]:
    return {"zh": OOS_ZH, "en": OOS_EN}


@pytest.fixture(scope="session")
def office() -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    root = Path(__file__).resolve().parents[2] / "datasets"
    out = {}
    for lang in ("zh", "en"):
        folder = root / f"office-{lang}"
        if not (folder / "utterances.csv").exists():
            pytest.skip(f"{folder} not present")
        out[lang] = (pd.read_csv(folder / "utterances.csv"), pd.read_csv(folder / "test.csv"))
    return out
