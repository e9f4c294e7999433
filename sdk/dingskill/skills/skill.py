"""``Skill``: a manifest, its trained intent model and its responses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SkillError
from .handlers import load_handlers
from .manifest import Manifest, load_manifest

if TYPE_CHECKING:  # pragma: no cover
    from ..nlu.classifier import IntentClassifier
    from ..nlu.entity import Entity
    from ..nlu.entity_extractor import EntityExtractor

__all__ = ["Skill", "MODEL_FILE", "ENTITY_MODEL_FILE"]

MODEL_FILE = "model.dsm"
ENTITY_MODEL_FILE = "entities.dse"  # only when the skill's data annotates entities
SOURCE_MEMBERS = ("skill.yaml", "CHANGELOG.md", "README.md", "handlers.py")


class Skill:
    """A skill from a source folder (``skill.yaml`` + data; trained on demand) or from an
    unpacked package (holds ``model.dsm``, and ``entities.dse`` when its data annotates
    entities; loaded, never retrained)."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        model: IntentClassifier | None = None,
        trusted: bool = True,
        entity_model: EntityExtractor | None = None,
    ) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self._model = model
        self._entity_model = entity_model
        self.trusted = trusted
        self._handlers: dict | None = None
        self._evaluation = None
        # outbound HTTP: hosts the operator approved at install (None: a source folder, as
        # declared) and the policy the runtime sets (secrets granted, private addresses)
        self.approved_hosts: list[str] | None = None
        self.outbound = None

    @classmethod
    def load(cls, path, trust: bool | None = None) -> Skill:
        """Load a skill folder. ``trust`` (whether ``handlers.py`` may run) defaults to True
        for a source folder (its author is developing it) and False for a package folder."""
        path = Path(path)
        manifest = load_manifest(path)
        model = entity_model = None
        is_package = (path / MODEL_FILE).exists()
        if is_package:
            from ..nlu.classifier import IntentClassifier

            model = IntentClassifier.from_bytes((path / MODEL_FILE).read_bytes())
            if (path / ENTITY_MODEL_FILE).exists():
                from ..nlu.entity_extractor import EntityExtractor, EntityModelError

                try:
                    entity_model = EntityExtractor.load(path / ENTITY_MODEL_FILE)
                except EntityModelError as exc:
                    raise SkillError(str(exc)) from exc
        return cls(
            path,
            manifest,
            model,
            trusted=(not is_package) if trust is None else trust,
            entity_model=entity_model,
        )

    def __repr__(self) -> str:
        return f"Skill({self.manifest.id!r}, version={self.manifest.version!r}, path={str(self.path)!r})"

    @property
    def is_package(self) -> bool:
        return (self.path / MODEL_FILE).exists()

    # -- data and model -----------------------------------------------------------------------
    def _data(self, key: str):
        ds = self.manifest.dataset
        if key not in ds:
            return None
        p = (self.path / ds[key]).resolve()
        from ..datasets.loaders import load as load_dataset  # pandas: only to train

        return load_dataset(
            p, text_col=ds.get("text_col", "text"), intent_col=ds.get("intent_col", "intent")
        )

    def rules(self) -> list[dict]:
        return [
            {"intent": t["intent"], "words": t.get("words", []), "patterns": t.get("patterns", [])}
            for t in self.manifest.triggers
        ]

    def train(self, extra=None, **params) -> IntentClassifier:
        """Train the skill's intent model on its dataset (trigger words become rules), and its
        entity extractor when the dataset annotates entities (:attr:`entity_model`).

        ``extra``: more labelled examples, ``(texts, intents)`` or a Dataset (e.g. the
        corrections made in the chat widget), added to the intent training data."""
        if self.is_package:
            raise SkillError(
                f"{self.path}: a packaged skill is not retrained; edit its source folder"
            )
        data = self._data("train")
        report = data.validate()
        if not report.ok:
            raise SkillError("training data has errors:\n" + "\n".join(report.lines()))
        self.check_slot_entities(getattr(data, "entity_types", []))
        texts, intents = list(data.texts), list(data.intents)
        if extra is not None:
            et, ei = (extra.texts, extra.intents) if hasattr(extra, "texts") else extra
            texts += list(et)
            intents += list(ei)
        kw = {"random_state": 0, **self.manifest.classifier, **params}
        from ..nlu.classifier import IntentClassifier

        self._model = IntentClassifier(rules=self.rules() or None, **kw).fit(texts, intents)
        unknown = sorted(set(self._model.classes_) - set(self.manifest.intents) - {"oos"})
        if unknown:
            raise SkillError(
                f"{self.path}/skill.yaml: intents {unknown} are in the data but have no response"
            )
        self._entity_model = self._train_entities(data)
        self._evaluation = None
        return self._model

    @staticmethod
    def _train_entities(data) -> EntityExtractor | None:
        """The entity extractor of an annotated dataset (None without annotations)."""
        if not data.has_entities:
            return None
        from ..nlu.entity_extractor import EntityExtractor

        return EntityExtractor(lookups=data.lookups or None, synonyms=data.synonyms or None).fit(
            data.texts, data.entities, data.intents
        )

    @property
    def model(self) -> IntentClassifier:
        if self._model is None:
            self.train()
        return self._model

    @property
    def entity_model(self) -> EntityExtractor | None:
        """The trained entity extractor; None when the skill's data annotates no entities."""
        if self._model is None and not self.is_package:
            self.train()
        return self._entity_model

    def find_entities(self, text: str, intent: str | None = None) -> list[Entity]:
        """The entities the trained extractor finds in ``text``; [] when the skill has no
        entity model. ``intent``: the one decided for the text, a feature of the model (when
        None, :meth:`decide` gives it)."""
        model = self.entity_model
        if model is None:
            return []
        if intent is None and getattr(model, "intent_feature_", False):
            intent = self.decide(text).intent
        return model.predict([text], None if intent is None else [intent])[0]

    def decide(self, text: str):
        return self.model.decide(text)

    def entities(self, text: str, today=None, now=None) -> list:
        """The entities of ``text`` for this skill (:class:`~dingskill.nlu.entity.Entity`,
        spans into ``text``): its word-list and pattern slots as lookup entities (``rule``,
        synonyms -> canonical value), the system entities (``system``: dates against
        ``today``, times, durations, numbers, money) and its trained extractor's predictions
        (``model``) when it has one; overlaps resolved."""
        import datetime as dt

        from .entities import find_entities

        return find_entities(self, text, today or dt.date.today(), now)

    def check_slot_entities(self, annotated) -> None:
        """Refuse a ``type: entity`` slot whose entity nothing can find: not a system type,
        not another slot's lookup entity, not among ``annotated`` (the types the training
        data annotates / the extractor knows)."""
        from ..nlu.entity import SYSTEM_TYPES
        from .slots import slot_entity, slot_type

        slots = self.manifest.slots
        known = set(annotated) | set(SYSTEM_TYPES)
        known |= {
            slot_entity(n, s)
            for n, s in slots.items()
            if slot_type(s) != "entity" or s.get("words")  # lookups find these
        }
        problems = [
            f"{self.manifest.where('slots', name, 'entity')}: slots.{name}.entity: "
            f"{spec['entity']!r} is not an entity the training data annotates "
            f"({', '.join(sorted(annotated)) or 'none annotated'}) nor a system entity "
            f"({', '.join(SYSTEM_TYPES)}): annotate it in the data, e.g. "
            f"[西湖厅]({spec['entity']}), or name one of those"
            for name, spec in slots.items()
            if slot_type(spec) == "entity" and spec.get("entity") not in known
        ]
        if problems:
            raise SkillError("\n".join(problems))

    def beyond_gate(self, text: str) -> bool:
        """Whether the model's novelty gate turns ``text`` away (its decision is then "oos"
        unless a rule matches); see ``IntentClassifier.beyond_gate``."""
        check = getattr(self.model, "beyond_gate", None)
        return bool(check(text)) if check is not None else False

    def match_rule(self, text: str):
        """The rule :meth:`decide` would apply to ``text``, or None (no model run)."""
        return self.model.match_rule(text)

    def handlers(self) -> dict:
        if self._handlers is None:
            self._handlers = load_handlers(self.path, self.manifest.handlers, self.trusted)
        return self._handlers

    def evaluate(self, **kw):
        """Evaluate on the manifest's test set (or a stratified 20 % split of the training data)."""
        from ..evaluation import evaluate

        test = self._data("test")
        if test is None:
            split = self._data("train").split(test_size=0.2, seed=0)
            # the same settings as the shipped model (skill.yaml's classifier section)
            params = {"random_state": 0, **self.manifest.classifier}
            from ..nlu.classifier import IntentClassifier

            model = IntentClassifier(rules=self.rules() or None, **params).fit(
                split.subset("train").texts, split.subset("train").intents
            )
            return evaluate(model, split.subset("test"), name=self.manifest.id, **kw)
        return evaluate(self.model, test, name=self.manifest.id, **kw)

    # Talking to a skill goes through the runtime's one Pipeline: ``dingskill.respond(skill,
    # text, context)`` (dingskill.runtime.local). The skills layer does not import the runtime,
    # so the former ``Skill.respond`` lives there now.

    # -- packaging ------------------------------------------------------------------------------
    def fingerprint(self) -> dict:
        from ..evaluation.model_folder import training_fingerprint

        data = self._data("train")
        return {
            "sha256": training_fingerprint(data.texts, data.intents),
            "utterances": len(data.texts),
            "intents": len(set(data.intents) - {"oos"}),
        }

    def package_files(self) -> dict[str, bytes]:
        """Every member of the package but RECORD and SIGNATURE, as deterministic bytes."""
        if self.is_package:
            raise SkillError(f"{self.path} is already a package; export from the source folder")
        files: dict[str, bytes] = {}
        for name in SOURCE_MEMBERS:
            p = self.path / name
            if p.exists():
                files[name] = p.read_bytes()
        if "CHANGELOG.md" not in files:
            raise SkillError(f"{self.path}: CHANGELOG.md is required in a package")
        resp_dir = self.path / "responses"
        if resp_dir.is_dir():
            for p in sorted(resp_dir.rglob("*")):
                if p.is_file():
                    files[p.relative_to(self.path).as_posix()] = p.read_bytes()
        files[MODEL_FILE] = self.model.to_bytes()
        if self.entity_model is not None:
            files[ENTITY_MODEL_FILE] = self.entity_model.to_bytes()
        ev = self.evaluate()
        summary = {
            "summary": ev.summary,
            "threshold": ev.threshold,
            "per_intent": json.loads(
                ev.per_intent.round(4).reset_index().to_json(orient="records", force_ascii=False)
            ),
        }
        files["evaluation.json"] = json.dumps(
            summary, ensure_ascii=False, indent=2, sort_keys=True
        ).encode()
        files["fingerprint.json"] = json.dumps(
            self.fingerprint(), indent=2, sort_keys=True
        ).encode()
        return files

    def export(self, dist, key=None) -> Path:
        """Write ``dist/<id>-<version>.skill`` (signed with ``key`` if given)."""
        from .packaging.export import export_skill

        return export_skill(self, dist, key=key)
