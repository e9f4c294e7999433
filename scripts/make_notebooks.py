"""Writes notebooks/*.ipynb from the cell sources below (outputs are produced by running them).

python scripts/make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parents[1] / "notebooks"

SETUP = """\
from pathlib import Path
import pandas as pd
# the project root, whether the notebook runs from notebooks/ or from the root
ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "skills").is_dir() and (p / "datasets").is_dir())
pd.set_option("display.max_colwidth", 60)"""

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01_explore_dataset": [
        (
            "md",
            "# 01 · Explore a dataset 探索数据集\n\nLoad labelled utterances, look at what is in them, and let "
            "`validate()` point at problems **before** training. 先看数据，再训练。",
        ),
        ("code", SETUP),
        (
            "code",
            "from dingskill.datasets import load\n\ntrain = load(ROOT / 'datasets/office-zh/utterances.csv')\n"
            "train",
        ),
        (
            "md",
            "A `Dataset` is a thin wrapper around a DataFrame: every row keeps the file and line it came from.",
        ),
        ("code", "train.df.head()"),
        ("code", "summary = train.summary()\nsummary['intents']"),
        ("code", "summary['languages']"),
        (
            "code",
            "ax = summary['intents']['count'].sort_values().plot.barh(figsize=(6, 5), title='utterances per intent')",
        ),
        (
            "md",
            "## Validation 校验\n\nEmpty texts, duplicates, the same text under two intents, tiny intents, "
            "control characters… each finding names the file and the line.",
        ),
        (
            "code",
            "import tempfile\n\nmessy = Path(tempfile.mkdtemp()) / 'messy.csv'\n"
            "messy.write_text('text,intent\\n我想请假,ask_leave\\n我想请假,payslip\\n  ,ask_leave\\nbook a room\\u0007,book_meeting_room\\n', encoding='utf-8')\n"
            "report = load(messy).validate(min_examples=2)\nprint(report)",
        ),
        ("code", "report.findings"),
        ("md", "## The English counterpart and a split 英文数据与划分"),
        (
            "code",
            "en = load(ROOT / 'datasets/office-en/utterances.csv')\n"
            "split = en.split(test_size=0.2, val_size=0.1, seed=0)\nsplit.df['split'].value_counts()",
        ),
        ("code", "from dingskill.notebook import dataset_view\n\ndataset_view(train)"),
    ],
    "02_train_and_evaluate": [
        (
            "md",
            "# 02 · Train and evaluate 训练与评估\n\n`dingskill.IntentClassifier` is a scikit-learn estimator "
            "with out-of-scope detection; `dingskill.evaluate` tells you what to fix.",
        ),
        ("code", SETUP),
        (
            "code",
            "from dingskill import IntentClassifier, evaluate\nfrom dingskill.datasets import load\n\n"
            "train = load(ROOT / 'datasets/office-zh/utterances.csv')\ntest = load(ROOT / 'datasets/office-zh/test.csv')\n"
            "model = IntentClassifier().fit(train.texts, train.intents)\nmodel.threshold_",
        ),
        ("code", "model.decide('我下周一想请三天年假')"),
        ("code", "model.top_k('帮我订个明天下午的会议室', k=3)"),
        (
            "md",
            "Why did the model decide that? `explain()` lists the features that pushed the decision.",
        ),
        ("code", "model.explain('我的报销什么时候到账', k=8)"),
        (
            "code",
            "report = evaluate(model, test, cv=3, train=train, learning_curve=True)\n"
            "pd.Series(report.summary)",
        ),
        ("code", "report.per_intent.head(8)"),
        ("code", "report.confused_pairs.head(8)"),
        ("code", "fig = report.plot_confusion()"),
        ("code", "fig = report.plot_threshold_sweep()"),
        ("code", "fig = report.plot_learning_curve()"),
        ("code", "report.cross_validation"),
        ("md", "## English 英文\n\nThe same defaults, no tuning, on the English office data:"),
        (
            "code",
            "en_train = load(ROOT / 'datasets/office-en/utterances.csv')\nen_test = load(ROOT / 'datasets/office-en/test.csv')\n"
            "en_report = evaluate(IntentClassifier().fit(en_train.texts, en_train.intents), en_test)\n"
            "pd.DataFrame({'office-zh': report.summary, 'office-en': en_report.summary})",
        ),
        (
            "md",
            "## What the embedding block brings 语义特征的作用\n\nBeside the character and word n-grams the "
            "default model uses a multilingual sentence encoder shipped in a wheel (`embeddings='use-m3'`, "
            "Google's Universal Sentence Encoder v3, 16 languages including Chinese; see "
            "`docs/evaluation.md`); a static WordLlama table is the lighter option. The encoder helps most "
            "where the test set uses words the training set never did. Train the variants on each sample "
            "dataset and compare:",
        ),
        (
            "code",
            "rows = {}\nfor name in ['office-zh', 'office-en']:\n"
            "    tr = load(ROOT / f'datasets/{name}/utterances.csv')\n"
            "    te = load(ROOT / f'datasets/{name}/test.csv')\n"
            "    for emb in [None, 'wordllama-l2-64', 'use-m3']:\n"
            "        m = IntentClassifier(embeddings=emb).fit(tr.texts, tr.intents)\n"
            "        rows[(name, emb or 'n-grams only')] = evaluate(m, te, sweep=False).summary\n"
            "compare = pd.DataFrame(rows).T[['in_scope_accuracy', 'oos_recall', 'macro_f1']].astype(float)\n"
            "ax = compare['in_scope_accuracy'].unstack().plot.bar(rot=0, figsize=(6, 3), ylim=(0.5, 1), "
            "title='in-scope accuracy: n-grams only vs with embeddings')\n"
            "ax.legend(loc='lower right')\ncompare",
        ),
        (
            "md",
            "Reports serialise to JSON for scripts (`report.to_json()`) and render as HTML here:",
        ),
        ("code", "en_report"),
    ],
    "03_chat_with_your_skill": [
        (
            "md",
            "# 03 · Chat with your skill 和技能对话\n\nThe widget sends every message through the **same pipeline "
            "the runtime uses** (preprocess → context → route → respond). Type a message and press Enter; under "
            "each answer you see the intent, the confidence, the top 3, the rule or model that decided, the slots "
            "and the latency.",
        ),
        ("code", SETUP),
        (
            "code",
            "from dingskill.notebook import ChatWidget\nfrom dingskill.skills import Skill\n\n"
            "hr = Skill.load(ROOT / 'skills/hr-assistant')\nfaq = Skill.load(ROOT / 'skills/faq-en')\n"
            "chat = ChatWidget([hr, faq], sender_id='staff-0001', sender_nick='王小明')\nchat",
        ),
        ("md", "The same conversation from code (what the widget shows after you type it):"),
        (
            "code",
            "for text in ['我想请假', '年假', '下周一', '三天']:\n    turn = chat.send(text)\n"
            "    print(f\"{text!r:12} -> {turn['intent']:<10} {turn['source']:<9} {turn['text'][:40]!r}\")",
        ),
        (
            "code",
            "pd.DataFrame([t for t in chat.transcript if t['role'] == 'bot'])[['user_text', 'intent', 'confidence', 'source', 'slots', 'latency_ms']]",
        ),
        ("md", "Group chats: switch the chat type; the bot is addressed with an @mention."),
        ("code", "chat.chat_type.value = 'group'\nchat.send('工资条在哪看')['intent']"),
        (
            "code",
            "chat.chat_type.value = 'single'\nchat.send('what are the office hours?')['text']",
        ),
        (
            "md",
            "## Digressions 话题岔开\n\nWhile a form waits for an answer, a message that another intent (of any "
            "skill, in any language) claims confidently, a command such as `/help`, small talk, or a question "
            "that merely contains a date is **answered, and the form resumes** — none of them becomes a slot "
            "value. `context['last_flow']` records why a form ended (completed, cancelled, timeout, switched, "
            "gave_up, skill_gone).",
        ),
        (
            "code",
            "import dingskill\n\n"
            "def script(turns, context):\n"
            "    rows = []\n"
            "    for text in turns:\n"
            "        r = dingskill.respond([hr, faq], text, context, sender_id='staff-0003', sender_nick='陈晨')\n"
            "        rows.append({'user': text, 'intent': r.intent, 'source': r.source, 'slots': r.slots, 'reply': r.text})\n"
            "    return pd.DataFrame(rows)\n\n"
            "zh = {}\n"
            "zh_turns = script(['你好', '我想请假', '事假', '明天北京会下雨吗', '订会议室', '/help', '下周一', '三天', '谢谢'], zh)\n"
            "assert zh_turns.intent.tolist()[3:6] == ['oos', 'book_meeting_room', 'help']\n"
            "assert all('回到刚才的事项' in r or 'Back to your request' in r for r in zh_turns.reply[3:6])\n"
            "assert zh_turns.slots[7] == {'leave_type': '事假', 'start_date': zh_turns.slots[6]['start_date'], 'days': 3}\n"
            "assert zh['last_flow']['ended'] == 'completed'\n"
            "zh_turns",
        ),
        ("md", "The same in English, and leaving a form with “cancel”:"),
        (
            "code",
            "en = {}\n"
            "en_turns = script(['hi', '我想请假', \"what's the wifi password?\", '年假', 'what can you do?', 'cancel', 'thank you', 'bye'], en)\n"
            "assert en_turns.intent[2] == 'wifi_password_faq' and 'Back to your request' in en_turns.reply[2]\n"
            "assert en_turns.slots[3] == {'leave_type': '年假'}\n"
            "assert en['last_flow']['ended'] == 'cancelled'\n"
            "en_turns",
        ),
    ],
    "04_improve_from_mistakes": [
        (
            "md",
            "# 04 · Improve from mistakes 从错误中改进\n\nFind the errors, fix them where you see them, retrain, "
            "tune the out-of-scope threshold, and compare before / after.",
        ),
        ("code", SETUP),
        (
            "code",
            "from dingskill import evaluate\nfrom dingskill.datasets import load\nfrom dingskill.skills import Skill\n"
            "from dingskill.notebook import ChatWidget, confusion_view, threshold_view, compare_view\n\n"
            "skill = Skill.load(ROOT / 'skills/hr-assistant')\ntest = load(ROOT / 'datasets/office-zh/test.csv')\n"
            "before = evaluate(skill.model, test)\nbefore.errors.head(10)",
        ),
        (
            "md",
            "Click a cell of the confusion matrix to see its misclassified examples 点击单元格查看样例:",
        ),
        ("code", "confusion_view(before)"),
        (
            "md",
            "Move the slider: a higher threshold catches more out-of-scope questions and costs in-scope accuracy.",
        ),
        ("code", "threshold_view(skill.model, test.texts, test.intents)"),
        (
            "md",
            "## Fix in place 就地修正\n\nThe bot does not know 食堂 (canteen) questions. Mark the wrong turns with the "
            "intent they should have, retrain, and see the new decision.",
        ),
        (
            "code",
            "chat = ChatWidget([skill], sender_id='staff-0002', sender_nick='李娜')\n"
            "for text in ['食堂几点开饭', '食堂什么时候开门', '公司食堂营业时间']:\n"
            "    turn = chat.send(text)\n    chat.mark(turn['index'], 'hr_policy_question')\nchat.corrections",
        ),
        ("code", "chat.retrain()"),
        ("code", "chat.send('食堂几点开饭')['intent']"),
        (
            "code",
            "after = evaluate(skill.model, test)\ncompare_view(before, after, names=('before', 'after'))",
        ),
        (
            "md",
            "Save the conversation as a regression case; `dingskill test-conversations` and the pytest helper "
            "`dingskill.notebook.assert_conversations` replay it.",
        ),
        (
            "code",
            "import tempfile\nfrom dingskill.notebook import replay_cases\n\n"
            "cases = chat.save_case(Path(tempfile.mkdtemp()) / 'canteen.jsonl', name='canteen')\n"
            "replay_cases([skill], cases)",
        ),
    ],
    "05_export_sign_install": [
        (
            "md",
            "# 05 · Export, sign, install, upgrade and roll back 打包、签名、安装、升级、回滚\n\nA package is a zip with "
            "a RECORD of SHA-256 digests and an optional ed25519 signature; the installed home verifies everything "
            "and keeps previous versions.",
        ),
        ("code", SETUP),
        (
            "code",
            "import shutil, tempfile\nfrom dingskill.skills import Skill\n"
            "from dingskill.skills.packaging import SkillHome, generate_keys, PackageError\n\n"
            "work = Path(tempfile.mkdtemp())\nkey, pub, key_id = generate_keys(work / 'keys', 'team')\n"
            "pkg = Skill.load(ROOT / 'skills/hr-assistant').export(work / 'dist', key=key)\npkg.name, key_id",
        ),
        ("code", "import zipfile\nprint(zipfile.ZipFile(pkg).read('RECORD').decode())"),
        (
            "code",
            "home = SkillHome(work / 'home')\nhome.trust_key(pub.read_text())\nhome.set_config(require_signature=True)\n"
            "home.install(pkg)\npd.DataFrame([s.to_dict() for s in home.installed()])",
        ),
        ("md", "An upgrade: version 1.1.0 of the same skill (a copy with a changed reply)."),
        (
            "code",
            "src = work / 'src'\nshutil.copytree(ROOT / 'skills', src / 'skills')\n(src / 'datasets').symlink_to(ROOT / 'datasets')\n"
            "manifest = src / 'skills/hr-assistant/skill.yaml'\n"
            "manifest.write_text(manifest.read_text(encoding='utf-8').replace('version: 1.0.0', 'version: 1.1.0'), encoding='utf-8')\n"
            "pkg11 = Skill.load(src / 'skills/hr-assistant').export(work / 'dist', key=key)\n"
            "home.install(pkg11, version='1.1.0')\npd.DataFrame([s.to_dict() for s in home.installed()])[['id', 'version', 'signature', 'previous']]",
        ),
        ("code", "home.rollback('com.dingskill.hr-assistant').version"),
        (
            "md",
            "Refusals leave the installed set untouched: an unsigned package while signatures are required, "
            "a tampered member…",
        ),
        (
            "code",
            "unsigned = Skill.load(ROOT / 'skills/faq-en').export(work / 'unsigned')\ntry:\n    home.install(unsigned)\n"
            "except PackageError as exc:\n    print('refused:', exc)",
        ),
        ("code", "home.verify()"),
    ],
    "06_run_the_runtime": [
        (
            "md",
            "# 06 · Run the Stream runtime 运行 Stream 运行时\n\n`dingskill run` connects to DingTalk in Stream mode. "
            "Here it connects to the **local emulator** instead (the real `dingtalk-stream` SDK, pointed at it with "
            "`DINGTALK_OPENAPI_ENDPOINT`), and we watch its metrics.",
        ),
        ("code", SETUP),
        (
            "code",
            "import json, os, socket, subprocess, sys, tempfile\nfrom dingskill.emulator import Emulator\n"
            "from dingskill.skills import Skill\nfrom dingskill.skills.packaging import SkillHome\n\n"
            "work = Path(tempfile.mkdtemp())\nhome = SkillHome(work / 'home')\n"
            "for name in ['hr-assistant', 'faq-en']:\n    home.install(Skill.load(ROOT / 'skills' / name).export(work / 'dist'))\n"
            "emulator = Emulator({'dingnotebookapp': 'notebook-secret'})\nurl = emulator.start()\n"
            "with socket.socket() as s:\n    s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]\n"
            "config = {'server': {'port': port}, 'channels': {'enterprise_chat': {'endpoint': url}}, 'skills': {'home': str(work / 'home')}}\n"
            "(work / 'runtime.json').write_text(json.dumps(config))\n"
            "env = {**os.environ, 'DINGSKILL_APP_KEY': 'dingnotebookapp', 'DINGSKILL_APP_SECRET': 'notebook-secret'}\n"
            "runtime = subprocess.Popen([sys.executable, '-m', 'dingskill.cli.main', 'run', '--config', str(work / 'runtime.json')], env=env)\n"
            "emulator.wait_connections(1, timeout=60)\nprint('runtime connected to', url)",
        ),
        (
            "code",
            "rows = []\nfor sender, text in [('u1', '我想请假'), ('u1', '病假'), ('u1', '明天'), ('u1', '两天'),\n"
            "                     ('u2', '工资条'), ('u3', 'hello'), ('u3', 'what is the wifi password?'), ('u2', '今天股票涨了吗')]:\n"
            "    msg_id = emulator.send(text, sender_id=sender)\n    body = emulator.wait_reply(msg_id)\n"
            "    m = emulator.message(msg_id)\n"
            "    rows.append({'sender': sender, 'text': text, 'reply': (body.get('text') or body.get('markdown'))['content' if 'text' in body else 'text'][:50],\n"
            "                 'latency_ms': m['replies'][0]['at_ms'] - m['pushed_ms']})\npd.DataFrame(rows)",
        ),
        (
            "code",
            "from dingskill import http_sync\nmetrics = http_sync.get(f'http://127.0.0.1:{port}/metrics').text\n"
            "lines = [l for l in metrics.splitlines() if l.startswith(('dingskill_messages_total{', 'dingskill_skill_calls_total{', 'dingskill_skills_loaded'))]\n"
            "pd.DataFrame([l.rsplit(' ', 1) for l in lines], columns=['metric', 'value'])",
        ),
        ("code", "http_sync.get(f'http://127.0.0.1:{port}/readyz').json()"),
        (
            "code",
            "ax = pd.DataFrame(rows)['latency_ms'].plot.bar(title='push → reply latency (ms)')",
        ),
        ("code", "runtime.terminate(); print('exit code', runtime.wait(30)); emulator.stop()"),
    ],
    "07_clinc150_benchmark": [
        (
            "md",
            "# 07 · Reproduce the CLINC150 benchmark 复现 CLINC150 基准\n\nCLINC150 (Larson et al., 2019) is read "
            "from a local data home — `../shared/datasets/clinc150` beside the project, or `$DINGSKILL_DATA` — and "
            "checked against its SHA-256; `fetch_clinc150(download=True)` fetches it from its public source on request.",
        ),
        ("code", SETUP),
        (
            "code",
            "import os\nfrom dingskill.datasets import DatasetError, fetch_clinc150\n\n"
            "home = os.environ.get('DINGSKILL_DATA') or ROOT.parent / 'shared/datasets/clinc150'\ntry:\n"
            "    clinc = fetch_clinc150('full', data_home=home)\n    print({k: len(v) for k, v in clinc.items()})\n"
            "except DatasetError as exc:\n    clinc = None\n    print('CLINC150 not available here:', exc)",
        ),
        (
            "code",
            "if clinc is not None:\n    from dingskill.evaluation.benchmark import clinc150_benchmark\n"
            "    result = clinc150_benchmark(data_home=home, variant='full', progress=True)\n"
            "    display(pd.Series(result))",
        ),
        (
            "code",
            "paper = pd.DataFrame({'in_scope_accuracy': [89.0, 91.0, 91.2, 91.7, 91.5, 93.5, 96.9],\n"
            "                      'oos_recall': [9.7, 14.5, 18.9, 14.0, 45.3, 47.4, 40.3]},\n"
            "                     index=['FastText', 'SVM', 'CNN', 'DialogFlow', 'Rasa', 'MLP', 'BERT'])\n"
            "if clinc is not None:\n    paper.loc['dingskill (this run)'] = [result['in_scope_accuracy'], result['oos_recall']]\n"
            "ax = paper.plot.barh(figsize=(6, 4), title='CLINC150 full: paper (oos-train) vs dingskill')\npaper",
        ),
    ],
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(
            cells=[
                new_markdown_cell(src) if kind == "md" else new_code_cell(src)
                for kind, src in cells
            ]
        )
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nb.metadata["language_info"] = {"name": "python"}
        nbformat.write(nb, OUT / f"{name}.ipynb")
        print("wrote", OUT / f"{name}.ipynb")


if __name__ == "__main__":
    main()
