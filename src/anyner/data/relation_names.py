"""Natural names for the relation and entity codes of the relation sets, kept reviewable here.

A relation name reads from head to tail: ``head <name> tail`` ("Naples" is the ``place of
birth`` of "Gennaro Basile" reads as the triple (Gennaro Basile, place of birth, Naples)).

Wikidata property ids (Re-DocRED, FewRel ``val_wiki``) are named from FewRel's
``pid2name.json`` at read time (:func:`load_pid_names`); the ids that file lacks are named in
``WIKIDATA_EXTRA``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# KnowledgeNet properties: (subject, property, object) with the subject as head.
KNOWLEDGENET = {
    "CEO": "chief executive officer",
    "CHILD_OF": "child of",
    "DATE_FOUNDED": "date founded",
    "DATE_OF_BIRTH": "date of birth",
    "DATE_OF_DEATH": "date of death",
    "EDUCATED_AT": "educated at",
    "EMPLOYEE_OR_MEMBER_OF": "employee or member of",
    "FOUNDED_BY": "founded by",
    "HEADQUARTERS": "headquarters location",
    "NATIONALITY": "nationality",
    "PLACE_OF_BIRTH": "place of birth",
    "PLACE_OF_RESIDENCE": "place of residence",
    "POLITICAL_AFFILIATION": "political affiliation",
    "SPOUSE": "spouse",
    "SUBSIDIARY_OF": "subsidiary of",
}

# MaintIE relation types; a path keeps its last step ("hasParticipant/hasAgent" -> "has agent").
MAINTIE = {
    "contains": "contains",
    "hasPart": "has part",
    "hasParticipant/hasAgent": "has agent",
    "hasParticipant/hasPatient": "has patient",
    "hasProperty": "has property",
    "isA": "is a",
}

CDR = {"CID": "chemical induces disease"}
CDR_ENTITIES = {"Chemical": "chemical", "Disease": "disease"}

# SemEval-2010 Task 8, after the direction is resolved: the head is the relation's first role
# (Cause-Effect: the cause; Product-Producer: the product).
SEMEVAL = {
    "Cause-Effect": "causes",
    "Component-Whole": "part of",
    "Content-Container": "contained in",
    "Entity-Destination": "destination",
    "Entity-Origin": "originates from",
    "Instrument-Agency": "instrument of",
    "Member-Collection": "member of",
    "Message-Topic": "about",
    "Product-Producer": "produced by",
}

# re3d: source -> target.
RE3D = {
    "AlliesOf": "allies of",
    "Apart": "apart from",
    "BelongsTo": "belongs to",
    "CoLocated": "co-located with",
    "CommWith": "communicates with",
    "Dislikes": "dislikes",
    "FightingAgainst": "fighting against",
    "HasAttrOf": "has attribute of",
    "InChargeOf": "in charge of",
    "IsSynonymOf": "synonym of",
    "Likes": "likes",
}
RE3D_ENTITIES = {
    "CommsIdentifier": "communications identifier",
    "Coordinate": "coordinate",
    "DocumentReference": "document reference",
    "Frequency": "frequency",
    "Location": "location",
    "MilitaryPlatform": "military platform",
    "Money": "money",
    "Nationality": "nationality",
    "Organisation": "organization",
    "Person": "person",
    "Quantity": "quantity",
    "Temporal": "time",
    "Vehicle": "vehicle",
    "Weapon": "weapon",
}

REDOCRED_ENTITIES = {
    "LOC": "location",
    "MISC": "miscellaneous",
    "NUM": "number",
    "ORG": "organization",
    "PER": "person",
    "TIME": "time",
}

# Wikidata properties of Re-DocRED that fewrel/pid2name.json does not name.
WIKIDATA_EXTRA = {
    "P569": "date of birth",
    "P570": "date of death",
    "P571": "inception",
    "P576": "dissolved, abolished or demolished",
    "P577": "publication date",
    "P580": "start time",
    "P582": "end time",
    "P585": "point in time",
    "P1198": "unemployment rate",
}

_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def split_camel(code: str) -> str:
    """``"TemperatureSensingObject"`` -> ``"temperature sensing object"``; acronyms stay upper case.

    Underscores and hyphens separate words too (``"may_treat"`` -> ``"may treat"``).
    """
    words = []
    for part in re.split(r"[_\-\s]+", code):
        for word in _CAMEL.findall(part):
            words.append(word if word.isupper() and len(word) > 1 else word.lower())
    return " ".join(words)


def verbalise_type_path(path: str) -> str:
    """The natural name of a hierarchical type: its last step, split into words.

    Example:
        >>> verbalise_type_path("PhysicalObject/SensingObject/TemperatureSensingObject")
        'temperature sensing object'
    """
    return split_camel(path.rstrip("/").rsplit("/", 1)[-1])


def load_pid_names(path: str | Path) -> dict[str, str]:
    """Wikidata id -> name from FewRel's ``pid2name.json`` (``{"P26": ["spouse", description]}``),
    with ``WIKIDATA_EXTRA`` for the ids the file lacks.

    Raises:
        FileNotFoundError: the file is absent.
        ValueError: an entry is not ``[name, ...]``.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object pid -> [name, description]")
    names = dict(WIKIDATA_EXTRA)
    for pid, value in data.items():
        if not (isinstance(value, list) and value and isinstance(value[0], str) and value[0].strip()):
            raise ValueError(f"{path}: entry {pid!r} is not [name, description]: {value!r}")
        names[pid] = value[0].strip()
    return names


__all__ = [
    "CDR",
    "CDR_ENTITIES",
    "KNOWLEDGENET",
    "MAINTIE",
    "RE3D",
    "RE3D_ENTITIES",
    "REDOCRED_ENTITIES",
    "SEMEVAL",
    "WIKIDATA_EXTRA",
    "load_pid_names",
    "split_camel",
    "verbalise_type_path",
]
