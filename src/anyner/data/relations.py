"""Readers for the relation sets' forms: records of words, entity spans and relations between them.

``read_relations(path_or_set)`` reads one file, one set folder, or a set by name, and returns
``RelationRecord`` objects with a ``RelationReport``. ``to_gliner_relex`` turns a record into the
reference ``gliner`` package's relation training example.

Forms and how they become records:

- ``knowledgenet``: one record a passage; character spans into ``passageText``. Subject and
  object spans are untyped (``label=None``). Passages with no fact are kept (no entities);
  ``meta["exhaustive"]`` names the properties annotated completely there.
- ``maintie``: one record a text; the file's tokens are the words; type paths are verbalised
  (``.../TemperatureSensingObject`` -> ``"temperature sensing object"``).
- ``redocred``: one record a document (its sentences' tokens in order). Every mention is an entity
  span, ``group`` the index of its entity (``vertexSet``). A relation between two entities is put on
  one pair of their mentions: a pair in one sentence if there is one, the fewest words apart, then
  the first.
- ``fewrel``: one record a sentence; head and tail mentions are untyped spans (``group``
  ``"head"``/``"tail"``), the relation on their closest pair. ``val_semeval`` labels carry the
  direction like SemEval's.
- ``cdr``: one record a document, text ``title + " " + abstract``. Mentions are ``chemical``/
  ``disease`` spans, ``group`` the MeSH id(s); a CID relation (between MeSH ids) is put on the closest
  chemical and disease mentions of its ids.
- ``re3d``: one record a document of a source folder; the ``BBC Online`` folder is not read. A
  relation is put on the entities at its source and target offsets.
- ``semeval2010_task8``: one record a sentence, the markers stripped; the two nominals are untyped.
  ``Cause-Effect(e2,e1)`` has e2 as head. ``Other`` sentences are kept with their nominals and no
  relation (``keep_other=False`` leaves them out, counted as skipped ``"Other"``).

Texts without tokens are split with ``split_words``; a character span becomes the words it
touches (counted in ``notes["widened"]`` when it does not fall on word boundaries). A span that
cannot be mapped (outside the text, or covering no word) is left out and counted in
``report.entity_skips``, and so is every relation on it (``report.relation_skips``). A record that is
malformed raises ``ReadError`` naming ``file:line`` (or the document), or with ``on_error="skip"`` is
counted as skipped.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from anyner.data import relation_names as names
from anyner.data.jsonfiles import is_json_int, iter_json_records
from anyner.data.report import OnError, ReadError, ReadReport, check_on_error
from anyner.data.report import format_counts as _counts
from anyner.words import split_words, word_span

UNTYPED_LABEL = (
    "entity"  # the label of untyped spans (FewRel, SemEval-2010 Task 8, KnowledgeNet) in training and scoring
)

RelationForm = Literal["knowledgenet", "maintie", "redocred", "fewrel", "cdr", "re3d", "semeval2010_task8"]
RELATION_FORMS: tuple[RelationForm, ...] = (
    "knowledgenet",
    "maintie",
    "redocred",
    "fewrel",
    "cdr",
    "re3d",
    "semeval2010_task8",
)
_ALIASES = {"semeval": "semeval2010_task8", "re-docred": "redocred", "bc5cdr": "cdr"}
RE3D_LEFT_OUT = ("BBC Online",)
# Files of the set folders that are not records.
_NOT_DATA = {"pid2name.json", "rel2id.json", "scheme.json"}


@dataclass(slots=True)
class EntitySpan:
    """An entity mention: words ``[start, end)``.

    Attributes:
        label: its natural type name, or None where the set's spans are untyped.
        group: the document-level entity it is a mention of (Re-DocRED entity index, CDR MeSH
            id(s), FewRel ``"head"``/``"tail"``), None where the set has none.
    """

    start: int
    end: int
    label: str | None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class RelationTriple:
    """A relation from ``entities[head]`` to ``entities[tail]`` of a record, with its natural name."""

    head: int
    tail: int
    label: str


@dataclass(slots=True)
class RelationRecord:
    """Words, entity spans and relations of one sentence, passage or document.

    ``source`` is ``file:line`` or ``file [document id]``; ``meta`` holds set-specific facts
    (document id, fold, the properties KnowledgeNet annotated exhaustively).
    """

    words: list[str]
    entities: list[EntitySpan] = field(default_factory=list)
    relations: list[RelationTriple] = field(default_factory=list)
    text: str | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class RelationReport(ReadReport):
    """A ``ReadReport`` with the counts of the kept records' contents.

    Attributes:
        entities: entity spans in kept records.
        relations: relations in kept records.
        relation_types: relation name -> count.
        entity_types: entity label -> count (``None`` counted as ``"(untyped)"``).
        entity_skips: entity spans left out of kept records, reason -> count.
        relation_skips: relations left out of kept records, reason -> count.
        files: records kept per file.
    """

    entities: int = 0
    relations: int = 0
    relation_types: Counter[str] = field(default_factory=Counter)
    entity_types: Counter[str] = field(default_factory=Counter)
    entity_skips: Counter[str] = field(default_factory=Counter)
    relation_skips: Counter[str] = field(default_factory=Counter)
    files: Counter[str] = field(default_factory=Counter)

    def count(self, record: RelationRecord, file: str) -> None:
        """Count one kept record."""
        self.read += 1
        self.files[file] += 1
        self.entities += len(record.entities)
        self.relations += len(record.relations)
        self.entity_types.update("(untyped)" if e.label is None else e.label for e in record.entities)
        self.relation_types.update(r.label for r in record.relations)

    def __str__(self) -> str:
        text = super().__str__()
        text += f"; {self.entities} entities, {self.relations} relations of {len(self.relation_types)} types"
        if self.entity_skips:
            text += f"; entities skipped: {_counts(self.entity_skips)}"
        if self.relation_skips:
            text += f"; relations skipped: {_counts(self.relation_skips)}"
        return text


class _Builder:
    """Collects one record's entities and relations, counting what cannot be kept."""

    def __init__(self, words: list[str], starts: list[int] | None = None, ends: list[int] | None = None):
        self.words = words
        self.starts = starts
        self.ends = ends
        self.entities: list[EntitySpan] = []
        self.relations: list[RelationTriple] = []
        self.index: dict[tuple[int, int, str | None, str | None], int] = {}
        self.entity_skips: Counter[str] = Counter()
        self.relation_skips: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()
        # Where each span is listed once (not KnowledgeNet's facts, which repeat their spans),
        # a span met again is counted as a duplicate.
        self.count_repeats = True
        self.sentence: dict[int, int] = {}  # entity index -> sentence, where the source has sentences

    def add_words(self, start: int, end: int, label: str | None, group: str | None = None) -> int | None:
        """The index of the entity at words ``[start, end)`` (added once); None when out of range."""
        if not 0 <= start < end <= len(self.words):
            self.entity_skips["span out of range"] += 1
            return None
        key = (start, end, label, group)
        if key in self.index:
            if self.count_repeats:
                self.notes["duplicate span"] += 1
            return self.index[key]
        self.index[key] = len(self.entities)
        self.entities.append(EntitySpan(start, end, label, group))
        return self.index[key]

    def add_chars(
        self, start: int, end: int, label: str | None, group: str | None = None, text_length: int = 0
    ) -> int | None:
        """The entity at the words characters ``[start, end)`` touch; None when they cannot be mapped."""
        assert self.starts is not None and self.ends is not None
        if end <= start:
            self.entity_skips["empty character span"] += 1
            return None
        if start < 0 or end > text_length:
            self.entity_skips["character span outside the text"] += 1
            return None
        span = word_span(self.starts, self.ends, start, end)
        if span is None:
            self.entity_skips["character span covers no word"] += 1
            return None
        first, stop = span
        if self.starts[first] != start or self.ends[stop - 1] != end:
            self.notes["widened"] += 1
        return self.add_words(first, stop, label, group)

    def relate(self, head: int | None, tail: int | None, label: str) -> None:
        if head is None or tail is None:
            self.relation_skips["argument not mapped"] += 1
            return
        triple = RelationTriple(head, tail, label)
        if triple in self.relations:
            self.notes["duplicate relation"] += 1
            return
        self.relations.append(triple)

    def relate_closest(self, heads: list[int], tails: list[int], label: str) -> None:
        """Put a relation on the closest pair of a head mention and a tail mention: one sentence's
        pair where the sentences are known, then the fewest words apart, then the first."""
        pairs = [(h, t) for h in heads for t in tails if h != t]
        if not pairs:
            self.relation_skips["no mention of an argument"] += 1
            return
        head, tail = min(pairs, key=lambda pair: (self._apart(*pair), self._gap(*pair), pair))
        self.relate(head, tail, label)

    def _apart(self, a: int, b: int) -> bool:
        """Whether two mentions are known to lie in different sentences."""
        x, y = self.sentence.get(a), self.sentence.get(b)
        return x is not None and y is not None and x != y

    def _gap(self, a: int, b: int) -> int:
        x, y = self.entities[a], self.entities[b]
        return max(0, y.start - x.end, x.start - y.end)

    def record(self, text: str | None, source: str, meta: dict[str, Any]) -> RelationRecord:
        return RelationRecord(self.words, self.entities, self.relations, text, source, meta)


def _char_builder(text: str) -> _Builder:
    words = split_words(text)
    return _Builder([w.text for w in words], [w.start for w in words], [w.end for w in words])


@dataclass
class _Options:
    natural_names: bool = True
    keep_other: bool = True
    pid_names: dict[str, str] | None = None


# A reader yields (record, notes, entity skips, relation skips): the record is a ReadError for a bad one,
# None for a SemEval "Other" sentence left out.
_Item = tuple[RelationRecord | ReadError | None, Counter[str], Counter[str], Counter[str]]


def _item(builder: _Builder, record: RelationRecord) -> _Item:
    return record, builder.notes, builder.entity_skips, builder.relation_skips


def _error(where: str, reason: str, detail: str) -> _Item:
    return ReadError(where, reason, detail), Counter(), Counter(), Counter()


def _name(code: str, table: dict[str, str], options: _Options, notes: Counter[str]) -> str:
    if not options.natural_names:
        return code
    name = table.get(code)
    if name is None:
        notes[f"unnamed code {code}"] += 1
        return code
    return name


def _get(value: Any, key: str, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(value, dict):
        raise ReadError(where, "bad record", f"expected an object, got {type(value).__name__}")
    item = value.get(key)
    if not isinstance(item, kind) or isinstance(item, bool):
        raise ReadError(where, "bad record", f"{key!r} must be {what}, got {item!r}")
    return item


def _pair(value: Any, where: str, what: str) -> tuple[int, int]:
    if not (isinstance(value, list | tuple) and len(value) == 2 and all(map(is_json_int, value))):
        raise ReadError(where, "bad span", f"{what} must be [start, end] integers, got {value!r}")
    return value[0], value[1]


# --- KnowledgeNet ------------------------------------------------------------------------------


def _knowledgenet(path: Path, options: _Options) -> Iterator[_Item]:
    for record in iter_json_records(path):
        if record.error is not None:
            yield _error(record.where, "bad json", record.error)
            continue
        try:
            yield _knowledgenet_record(record.value, record.where, options)
        except ReadError as err:
            yield err, Counter(), Counter(), Counter()


def _knowledgenet_record(value: Any, where: str, options: _Options) -> _Item:
    text = _get(value, "passageText", str, where, "a string")
    facts = _get(value, "facts", list, where, "a list")
    builder = _char_builder(text)
    builder.count_repeats = False
    for fact in facts:
        relation = _get(fact, "relation", str, where, "a string")
        subject = _pair(fact.get("subject"), where, "'subject'")
        obj = _pair(fact.get("object"), where, "'object'")
        for span, key in ((subject, "subject_text"), (obj, "object_text")):
            if key in fact and text[span[0] : span[1]] != fact[key]:
                builder.notes["text differs from span"] += 1
        head = builder.add_chars(*subject, None, text_length=len(text))
        tail = builder.add_chars(*obj, None, text_length=len(text))
        builder.relate(head, tail, _name(relation, names.KNOWLEDGENET, options, builder.notes))
    exhaustive = [
        _name(code, names.KNOWLEDGENET, options, Counter())
        for code in value.get("exhaustivelyAnnotatedProperties", [])
    ]
    meta = {"document": value.get("documentId"), "fold": value.get("fold"), "exhaustive": exhaustive}
    return _item(builder, builder.record(text, where, meta))


# --- MaintIE -----------------------------------------------------------------------------------


def _maintie(path: Path, options: _Options) -> Iterator[_Item]:
    for record in iter_json_records(path):
        try:
            yield _maintie_record(record.value, record.where, options)
        except ReadError as err:
            yield err, Counter(), Counter(), Counter()


def _maintie_record(value: Any, where: str, options: _Options) -> _Item:
    tokens = _get(value, "tokens", list, where, "a list of strings")
    if not all(isinstance(token, str) for token in tokens):
        raise ReadError(where, "bad record", "'tokens' must be a list of strings")
    entities = _get(value, "entities", list, where, "a list")
    relations = _get(value, "relations", list, where, "a list")
    builder = _Builder(tokens)
    index: list[int | None] = []
    for entity in entities:
        start = _get(entity, "start", int, where, "an integer")
        end = _get(entity, "end", int, where, "an integer")
        kind = _get(entity, "type", str, where, "a string")
        label = names.verbalise_type_path(kind) if options.natural_names else kind
        index.append(builder.add_words(start, end, label))
    for relation in relations:
        head = _get(relation, "head", int, where, "an integer")
        tail = _get(relation, "tail", int, where, "an integer")
        kind = _get(relation, "type", str, where, "a string")
        if not (0 <= head < len(index) and 0 <= tail < len(index)):
            builder.relation_skips["entity index out of range"] += 1
            continue
        builder.relate(index[head], index[tail], _name(kind, names.MAINTIE, options, builder.notes))
    return _item(builder, builder.record(value.get("text"), where, {}))


# --- Re-DocRED ---------------------------------------------------------------------------------


def _redocred(path: Path, options: _Options) -> Iterator[_Item]:
    for record in iter_json_records(path):
        try:
            yield _redocred_record(record.value, record.where, options)
        except ReadError as err:
            yield err, Counter(), Counter(), Counter()


def _redocred_record(value: Any, where: str, options: _Options) -> _Item:
    sents = _get(value, "sents", list, where, "a list of token lists")
    vertex_set = _get(value, "vertexSet", list, where, "a list of mention lists")
    labels = _get(value, "labels", list, where, "a list")
    title = value.get("title")
    where = f"{where} [{title}]" if isinstance(title, str) else where
    offsets, words = [], []
    for sent in sents:
        if not isinstance(sent, list) or not all(isinstance(token, str) for token in sent):
            raise ReadError(where, "bad record", "'sents' must be a list of token lists")
        offsets.append(len(words))
        words.extend(sent)
    builder = _Builder(words)
    mentions: list[list[int]] = []
    for number, cluster in enumerate(vertex_set):
        if not isinstance(cluster, list):
            raise ReadError(where, "bad record", f"vertexSet[{number}] must be a list of mentions")
        found = []
        for mention in cluster:
            start, end = _pair(_get(mention, "pos", list, where, "[start, end]"), where, "'pos'")
            sent_id = _get(mention, "sent_id", int, where, "an integer")
            kind = _get(mention, "type", str, where, "a string")
            if not 0 <= sent_id < len(sents) or not 0 <= start < end <= len(sents[sent_id]):
                builder.entity_skips["span out of range"] += 1
                continue
            label = _name(kind, names.REDOCRED_ENTITIES, options, builder.notes)
            index = builder.add_words(offsets[sent_id] + start, offsets[sent_id] + end, label, str(number))
            if index is not None:
                builder.sentence[index] = sent_id
            found.append(index)
        mentions.append([i for i in found if i is not None])
    for label in labels:
        head = _get(label, "h", int, where, "an integer")
        tail = _get(label, "t", int, where, "an integer")
        code = _get(label, "r", str, where, "a string")
        if not (0 <= head < len(mentions) and 0 <= tail < len(mentions)):
            builder.relation_skips["entity index out of range"] += 1
            continue
        builder.relate_closest(mentions[head], mentions[tail], _wikidata_name(code, options, builder.notes))
    return _item(builder, builder.record(None, where, {"document": title}))


def _wikidata_name(code: str, options: _Options, notes: Counter[str]) -> str:
    if not options.natural_names:
        return code
    if options.pid_names is None:
        notes["pid2name.json absent: Wikidata ids kept"] += 1
        return names.WIKIDATA_EXTRA.get(code, code)
    return _name(code, options.pid_names, options, notes)


# --- FewRel ------------------------------------------------------------------------------------

_DIRECTED = re.compile(r"^(?P<name>[^()]+)\((?P<first>e[12]),(?P<second>e[12])\)$")


def _fewrel(path: Path, options: _Options) -> Iterator[_Item]:
    with open(path, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as err:
            yield _error(f"{path}:{err.lineno}", "bad json", f"invalid JSON: {err.msg} at column {err.colno}")
            return
    if not isinstance(data, dict):
        yield _error(str(path), "bad record", "expected an object relation -> list of instances")
        return
    for code, instances in data.items():
        if not isinstance(instances, list):
            yield _error(f"{path} [{code}]", "bad record", "expected a list of instances")
            continue
        for number, instance in enumerate(instances):
            where = f"{path} [{code} #{number}]"
            try:
                yield _fewrel_record(code, instance, where, options)
            except ReadError as err:
                yield err, Counter(), Counter(), Counter()


def _fewrel_record(code: str, value: Any, where: str, options: _Options) -> _Item:
    tokens = _get(value, "tokens", list, where, "a list of strings")
    if not all(isinstance(token, str) for token in tokens):
        raise ReadError(where, "bad record", "'tokens' must be a list of strings")
    builder = _Builder(tokens)
    sides = []
    for key, group in (("h", "head"), ("t", "tail")):
        item = value.get(key)
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], list)):
            raise ReadError(
                where, "bad record", f"{key!r} must be [name, id, [[token indices]]], got {item!r}"
            )
        found = []
        for mention in item[2]:
            if not (isinstance(mention, list) and mention and all(map(is_json_int, mention))):
                raise ReadError(
                    where, "bad span", f"a mention must be a list of token indices, got {mention!r}"
                )
            first, last = min(mention), max(mention)
            if sorted(mention) != list(range(first, last + 1)):
                builder.entity_skips["mention not contiguous"] += 1
                continue
            found.append(builder.add_words(first, last + 1, None, group))
        sides.append([i for i in found if i is not None])
    heads, tails = sides
    directed = _DIRECTED.match(code)
    if directed:
        if directed["first"] == "e2":
            heads, tails = tails, heads
        name = _name(directed["name"], names.SEMEVAL, options, builder.notes)
    elif re.fullmatch(r"P\d+", code):
        name = _wikidata_name(code, options, builder.notes)
    else:
        name = names.split_camel(code) if options.natural_names else code
    builder.relate_closest(heads, tails, name)
    return _item(builder, builder.record(None, where, {"code": code}))


# --- CDR (PubTator) ----------------------------------------------------------------------------


def _cdr(path: Path, options: _Options) -> Iterator[_Item]:
    document: list[tuple[int, str]] = []
    with open(path, encoding="utf-8", newline=None) as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if line.strip():
                document.append((number, line))
                continue
            if document:
                yield _cdr_document(path, document, options)
                document = []
    if document:
        yield _cdr_document(path, document, options)


_PUBTATOR_TEXT = re.compile(r"^(?P<pmid>[^|\t]+)\|(?P<kind>[ta])\|(?P<text>.*)$")


def _cdr_document(path: Path, lines: list[tuple[int, str]], options: _Options) -> _Item:
    first = lines[0][0]
    title = abstract = pmid = None
    mentions: list[tuple[str, int, int, int, str, str]] = []  # where, line, start, end, type, ids
    relations: list[tuple[str, str, str, str]] = []
    for number, line in lines:
        where = f"{path}:{number}"
        text = _PUBTATOR_TEXT.match(line)
        fields = line.split("\t")
        doc = text["pmid"] if text else fields[0]
        if pmid is None:
            pmid = doc
        elif doc != pmid:
            return _error(where, "bad record", f"document {doc} starts without a blank line after {pmid}")
        if text:
            if text["kind"] == "t":
                title = text["text"]
            else:
                abstract = text["text"]
        elif len(fields) == 4 and fields[1] == "CID":
            relations.append((where, fields[1], fields[2], fields[3]))
        elif len(fields) in (6, 7) and _is_int_text(fields[1]) and _is_int_text(fields[2]):
            mentions.append((where, number, int(fields[1]), int(fields[2]), fields[4], fields[5]))
        else:
            return _error(
                where, "bad line", f"not a PubTator title, abstract, mention or CID line: {line[:80]!r}"
            )
    where = f"{path}:{first} [{pmid}]"
    if title is None or abstract is None:
        return _error(where, "bad record", "a document needs a title (|t|) and an abstract (|a|) line")
    text = f"{title} {abstract}"
    builder = _char_builder(text)
    by_id: dict[str, list[int]] = defaultdict(list)
    for _, _, start, end, kind, ids in mentions:
        label = _name(kind, names.CDR_ENTITIES, options, builder.notes)
        index = builder.add_chars(start, end, label, None if ids == "-1" else ids, len(text))
        if index is not None:
            for mesh in ids.split("|"):
                by_id[mesh].append(index)
    for _, code, chemical, disease in relations:
        builder.relate_closest(
            by_id.get(chemical, []), by_id.get(disease, []), _name(code, names.CDR, options, builder.notes)
        )
    return _item(builder, builder.record(text, where, {"document": pmid}))


def _is_int_text(text: str) -> bool:
    """Whether ``text`` is a non-negative decimal integer."""
    return text.isascii() and text.isdigit()


# --- re3d --------------------------------------------------------------------------------------


def _re3d(path: Path, options: _Options) -> Iterator[_Item]:
    documents: dict[str, tuple[str, str]] = {}  # id -> (where, text)
    order = []
    for record in iter_json_records(path / "documents.json"):
        if record.error is not None:
            yield _error(record.where, "bad json", record.error)
            continue
        try:
            doc_id = _get(record.value, "_id", str, record.where, "a string")
            text = _get(record.value, "text", str, record.where, "a string")
        except ReadError as err:
            yield err, Counter(), Counter(), Counter()
            continue
        documents[doc_id] = (record.where, text)
        order.append(doc_id)
    parts: dict[str, dict[str, list[tuple[str, dict[str, Any]]]]] = {
        "entities": defaultdict(list),
        "relations": defaultdict(list),
    }
    for kind in parts:
        for record in iter_json_records(path / f"{kind}.json"):
            try:
                if record.error is not None:
                    raise ReadError(record.where, "bad json", record.error)
                doc_id = _get(record.value, "documentId", str, record.where, "a string")
            except ReadError as err:
                # A line that names no document cannot be tied to one: it fails alone.
                yield err, Counter(), Counter(), Counter()
                continue
            if doc_id not in documents:
                yield _error(
                    record.where, "unknown document", f"documentId {doc_id} is not in documents.json"
                )
                continue
            parts[kind][doc_id].append((record.where, record.value))
    for doc_id in order:
        where, text = documents[doc_id]
        try:
            yield _re3d_document(
                text, f"{where} [{doc_id}]", parts["entities"][doc_id], parts["relations"][doc_id], options
            )
        except ReadError as err:
            yield err, Counter(), Counter(), Counter()


def _re3d_document(
    text: str,
    where: str,
    entities: list[tuple[str, dict[str, Any]]],
    relations: list[tuple[str, dict[str, Any]]],
    options: _Options,
) -> _Item:
    builder = _char_builder(text)
    at: dict[tuple[int, int], int] = {}
    for line, entity in entities:
        start = _get(entity, "begin", int, line, "an integer")
        end = _get(entity, "end", int, line, "an integer")
        kind = _get(entity, "type", str, line, "a string")
        if "value" in entity and text[start:end] != entity["value"]:
            builder.notes["text differs from span"] += 1
        index = builder.add_chars(
            start, end, _name(kind, names.RE3D_ENTITIES, options, builder.notes), None, len(text)
        )
        if index is not None:
            at.setdefault((start, end), index)
    for line, relation in relations:
        source = (
            _get(relation, "sourceBegin", int, line, "an integer"),
            _get(relation, "sourceEnd", int, line, "an integer"),
        )
        target = (
            _get(relation, "targetBegin", int, line, "an integer"),
            _get(relation, "targetEnd", int, line, "an integer"),
        )
        kind = _get(relation, "type", str, line, "a string")
        if source not in at or target not in at:
            builder.relation_skips["argument is no entity"] += 1
            continue
        builder.relate(at[source], at[target], _name(kind, names.RE3D, options, builder.notes))
    return _item(builder, builder.record(text, where, {"document": where.rsplit("[", 1)[-1].rstrip("]")}))


# --- SemEval-2010 Task 8 -----------------------------------------------------------------------

_SEMEVAL_LINE = re.compile(r'^(?P<id>\d+)\t"(?P<sentence>.*)"\s*$')
_MARKERS = re.compile(r"</?e[12]>")


def _semeval(path: Path, options: _Options) -> Iterator[_Item]:
    block: list[tuple[int, str]] = []
    with open(path, encoding="utf-8", newline=None) as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                block.append((number, line))
            elif block:
                yield _semeval_block(path, block, options)
                block = []
    if block:
        yield _semeval_block(path, block, options)


def _semeval_block(path: Path, block: list[tuple[int, str]], options: _Options) -> _Item:
    number, first = block[0]
    where = f"{path}:{number}"
    line = _SEMEVAL_LINE.match(first)
    if line is None:
        return _error(where, "bad line", f'expected id<TAB>"sentence", got {first[:80]!r}')
    if len(block) < 2:
        return _error(where, "bad record", "a sentence line needs a relation line after it")
    code = block[1][1].strip()
    marked = line["sentence"]
    pieces = _MARKERS.split(marked)
    tags = _MARKERS.findall(marked)
    if tags != ["<e1>", "</e1>", "<e2>", "</e2>"] and tags != ["<e2>", "</e2>", "<e1>", "</e1>"]:
        return _error(where, "bad record", f"expected one <e1>...</e1> and one <e2>...</e2>, got {tags}")
    text, spans, cursor = "", {}, 0
    for piece, tag in zip(pieces, [*tags, ""], strict=True):
        text += piece
        if tag.startswith("</"):
            spans[tag[2:4]] = (cursor, len(text))
        cursor = len(text)
    builder = _char_builder(text)
    e1 = builder.add_chars(*spans["e1"], None, "e1", len(text))
    e2 = builder.add_chars(*spans["e2"], None, "e2", len(text))
    meta = {"id": line["id"], "code": code}
    if code == "Other":
        if not options.keep_other:
            return None, Counter(), Counter(), Counter()
        return _item(builder, builder.record(text, where, meta))
    directed = _DIRECTED.match(code)
    if directed is None:
        return _error(
            f"{path}:{block[1][0]}",
            "bad label",
            f"expected a label like Cause-Effect(e1,e2) or Other, got {code!r}",
        )
    head, tail = (e1, e2) if directed["first"] == "e1" else (e2, e1)
    builder.relate(head, tail, _name(directed["name"], names.SEMEVAL, options, builder.notes))
    return _item(builder, builder.record(text, where, meta))


_READERS: dict[str, Callable[[Path, _Options], Iterator[_Item]]] = {
    "knowledgenet": _knowledgenet,
    "maintie": _maintie,
    "redocred": _redocred,
    "fewrel": _fewrel,
    "cdr": _cdr,
    "re3d": _re3d,
    "semeval2010_task8": _semeval,
}


# --- detection and the entry point -------------------------------------------------------------


def detect_relation_form(path: str | Path) -> RelationForm:
    """The form of a relation file or folder, from its content.

    A folder holding ``documents.json`` (or folders that do) is re3d; other folders take the form
    of their data files.

    Raises:
        ValueError: a form this module does not read.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "documents.json").is_file() or any(
            (p / "documents.json").is_file() for p in path.iterdir()
        ):
            return "re3d"
        files = _data_files(path)
        if not files:
            raise ValueError(f"{path}: no relation data files in this folder")
        return detect_relation_form(files[0])
    with open(path, encoding="utf-8-sig", newline=None) as handle:
        head = handle.read(65536)
    first = next((line for line in head.splitlines() if line.strip()), "")
    if _PUBTATOR_TEXT.match(first):
        return "cdr"
    if _SEMEVAL_LINE.match(first):
        return "semeval2010_task8"
    stripped = head.lstrip()
    if stripped.startswith("{") and '"passageText"' in first:
        return "knowledgenet"
    if stripped.startswith("[") and '"vertexSet"' in head:
        return "redocred"
    if stripped.startswith("[") and '"tokens"' in head and '"relations"' in head:
        return "maintie"
    if stripped.startswith("{") and '"tokens"' in head and '"h"' in head:
        return "fewrel"
    raise ValueError(f"{path}: not a relation form this reader knows ({', '.join(RELATION_FORMS)})")


def _data_files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name in _NOT_DATA:
            continue
        if path.suffix.lower() in (".json", ".jsonl") or (
            path.suffix.lower() == ".txt" and _is_text_form(path)
        ):
            files.append(path)
    return files


def _is_text_form(path: Path) -> bool:
    """Whether a ``.txt`` file starts like PubTator or SemEval (not a README)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline=None) as handle:
        for line in handle:
            if line.strip():
                return bool(
                    _PUBTATOR_TEXT.match(line.rstrip("\n")) or _SEMEVAL_LINE.match(line.rstrip("\r\n"))
                )
    return False


def _re3d_folders(path: Path, report: RelationReport) -> list[Path]:
    if (path / "documents.json").is_file():
        return [path]
    folders = []
    for folder in sorted(p for p in path.iterdir() if (p / "documents.json").is_file()):
        if folder.name in RE3D_LEFT_OUT:
            report.notes[f"left out: {folder.name}"] += 1
            continue
        folders.append(folder)
    return folders


def relations_root() -> Path | None:
    """The folder of the relation sets: ``$ANYNER_RELATIONS``, else ``data/relations`` under
    ``$ANYNER_SHARED``; None when neither is set."""
    if os.environ.get("ANYNER_RELATIONS"):
        return Path(os.environ["ANYNER_RELATIONS"])
    if os.environ.get("ANYNER_SHARED"):
        return Path(os.environ["ANYNER_SHARED"]) / "data" / "relations"
    return None


def _resolve(source: str | Path, root: str | Path | None) -> Path:
    path = Path(source)
    if path.exists():
        return path
    name = _ALIASES.get(str(source), str(source))
    if name in RELATION_FORMS:
        base = Path(root) if root is not None else relations_root()
        if base is None:
            raise FileNotFoundError(
                f"{source!r} is a set name: pass root= (the relations folder) or set $ANYNER_RELATIONS"
            )
        if not (base / name).exists():
            raise FileNotFoundError(f"set {name!r}: {base / name} does not exist")
        return base / name
    raise FileNotFoundError(f"{source}: no such file or folder, nor a set name ({', '.join(RELATION_FORMS)})")


def _pid_names(path: Path, pid2name: str | Path | None, report: RelationReport) -> dict[str, str] | None:
    candidates = [Path(pid2name)] if pid2name is not None else []
    base = path if path.is_dir() else path.parent
    candidates += [base / "pid2name.json", base.parent / "fewrel" / "pid2name.json"]
    for candidate in candidates:
        if candidate.is_file():
            return names.load_pid_names(candidate)
    if pid2name is not None:
        raise FileNotFoundError(f"pid2name file {pid2name} does not exist")
    return None


def iter_relations(
    source: str | Path,
    *,
    form: RelationForm | None = None,
    root: str | Path | None = None,
    on_error: OnError = "raise",
    natural_names: bool = True,
    keep_other: bool = True,
    pid2name: str | Path | None = None,
    report: RelationReport | None = None,
) -> Iterator[RelationRecord]:
    """Stream the records of a relation file, a set folder, or a set by name.

    Args:
        source: a file, a set folder (all its data files, in name order; a re3d folder reads its
            source folders but ``BBC Online``), or a set name looked up under ``root``.
        form: one of ``RELATION_FORMS``; None detects it from the content.
        root: the folder holding the sets, for a set name (default :func:`relations_root`).
        on_error: ``"raise"`` a ``ReadError`` naming ``file:line`` (or the document) on a
            malformed record, or ``"skip"`` it and count it in the report.
        natural_names: name relations and entity types naturally (``SPOUSE`` -> ``"spouse"``);
            False keeps the publishers' codes.
        keep_other: keep SemEval ``Other`` sentences (nominals, no relation).
        pid2name: FewRel's ``pid2name.json`` for Wikidata names; None looks beside the file and in
            a sibling ``fewrel`` folder. Where none is found the ids stay (but the nine of
            ``WIKIDATA_EXTRA``) and the report's notes say so.
        report: filled in as records are read.
    """
    check_on_error(on_error)
    path = _resolve(source, root)
    report = report if report is not None else RelationReport(str(path))
    if form is None:
        form = detect_relation_form(path)
    else:
        form = _ALIASES.get(form, form)  # type: ignore[assignment]
        if form not in RELATION_FORMS:
            raise ValueError(f"form must be one of {RELATION_FORMS} or None, got {form!r}")
    options = _Options(natural_names=natural_names, keep_other=keep_other)
    if form in ("redocred", "fewrel") and natural_names:
        options.pid_names = _pid_names(path, pid2name, report)
    if form == "re3d":
        units = _re3d_folders(path, report) if path.is_dir() else [path.parent]
    else:
        units = _data_files(path) if path.is_dir() else [path]
    return _iter(units, form, options, on_error, report)


def _iter(
    units: list[Path], form: str, options: _Options, on_error: OnError, report: RelationReport
) -> Iterator[RelationRecord]:
    for unit in units:
        for record, notes, entity_skips, relation_skips in _READERS[form](unit, options):
            if isinstance(record, ReadError):
                report.fail(record, on_error)
                continue
            if record is None:
                report.skip("Other")
                continue
            report.notes.update(notes)
            report.entity_skips.update(entity_skips)
            report.relation_skips.update(relation_skips)
            report.count(record, str(unit))
            yield record


def read_relations(
    source: str | Path,
    *,
    form: RelationForm | None = None,
    root: str | Path | None = None,
    on_error: OnError = "raise",
    natural_names: bool = True,
    keep_other: bool = True,
    pid2name: str | Path | None = None,
    limit: int | None = None,
) -> tuple[list[RelationRecord], RelationReport]:
    """Read relation records and a report of what was read and skipped.

    Arguments as for :func:`iter_relations`; ``limit`` stops after that many records (the
    report covers what was read).

    Example:
        ``records, report = read_relations("maintie", root="../shared/data/relations")``;
        ``print(report)`` shows records, skips, entities, relations and relation types.
    """
    report = RelationReport(str(source))
    records = iter_relations(
        source,
        form=form,
        root=root,
        on_error=on_error,
        natural_names=natural_names,
        keep_other=keep_other,
        pid2name=pid2name,
        report=report,
    )
    if limit is None:
        return list(records), report
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return list(islice(records, limit)), report


def split_record(record: RelationRecord, max_words: int) -> tuple[list[RelationRecord], int]:
    """Cut a record into consecutive windows of at most ``max_words`` words (GLiNER truncates longer
    inputs), never inside an entity span, to put a document-level record within a model's reach.

    Each window keeps the entities inside it and the relations with both ends inside it; its
    ``source`` adds ``[words a:b]``.

    Returns:
        ``(windows, lost)``: ``lost`` counts relations whose ends fell into different windows.

    Raises:
        ValueError: ``max_words < 1``, or an entity span longer than ``max_words``.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    if len(record.words) <= max_words:
        return [record], 0
    cuts, start = [], 0
    while start < len(record.words):
        end = min(start + max_words, len(record.words))
        moved = True
        while moved:  # move the cut back before any span that crosses it
            moved = False
            for entity in record.entities:
                if entity.start < end < entity.end:
                    end, moved = entity.start, True
        if end <= start:
            raise ValueError(f"{record.source}: an entity span is longer than max_words={max_words}")
        cuts.append((start, end))
        start = end
    windows, window_of = [], {}
    for number, (a, b) in enumerate(cuts):
        inside = [i for i, e in enumerate(record.entities) if a <= e.start and e.end <= b]
        renumber = {old: new for new, old in enumerate(inside)}
        window_of.update(dict.fromkeys(inside, number))
        entities = [
            EntitySpan(e.start - a, e.end - a, e.label, e.group) for e in (record.entities[i] for i in inside)
        ]
        relations = [
            RelationTriple(renumber[r.head], renumber[r.tail], r.label)
            for r in record.relations
            if r.head in renumber and r.tail in renumber
        ]
        text = None
        windows.append(
            RelationRecord(
                record.words[a:b],
                entities,
                relations,
                text,
                f"{record.source} [words {a}:{b}]",
                dict(record.meta),
            )
        )
    lost = sum(1 for r in record.relations if window_of[r.head] != window_of[r.tail])
    return windows, lost


def to_gliner_relex(record: RelationRecord, untyped_label: str = UNTYPED_LABEL) -> dict[str, Any]:
    """The reference ``gliner`` package's relation training example of a record.

    ``{"tokenized_text": words, "ner": [[start, end, label]], "relations": [[head, tail, name]]}``:
    word indices inclusive at both ends, ``head``/``tail`` index ``ner``. Untyped spans get
    ``untyped_label``. Two mentions of one span (Re-DocRED, CDR) become one ``ner`` entry.
    """
    ner: list[list[Any]] = []
    where: dict[tuple[int, int, str], int] = {}
    index = []
    for entity in record.entities:
        label = untyped_label if entity.label is None else entity.label
        key = (entity.start, entity.end - 1, label)
        if key not in where:
            where[key] = len(ner)
            ner.append([*key])
        index.append(where[key])
    relations: list[list[Any]] = []
    for relation in record.relations:
        triple = [index[relation.head], index[relation.tail], relation.label]
        if triple not in relations:
            relations.append(triple)
    return {"tokenized_text": list(record.words), "ner": ner, "relations": relations}


__all__ = [
    "RELATION_FORMS",
    "UNTYPED_LABEL",
    "EntitySpan",
    "RelationForm",
    "RelationRecord",
    "RelationReport",
    "RelationTriple",
    "detect_relation_form",
    "iter_relations",
    "read_relations",
    "relations_root",
    "split_record",
    "to_gliner_relex",
]
