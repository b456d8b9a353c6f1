"""Entities and typed relations found in a text, without a model (pure functions).

Deterministic on purpose: it runs on every stored turn, offline, and gives the same graph
for the same history. Entities are capitalised phrases (names of people, places,
organisations, works) plus the objects of a few first-person patterns ("my dog", "a pottery
class"); relations are typed by patterns ("my sister Ana" → ``family``, "moved to Lisbon"
→ ``lives_in``) and every pair of entities in one text is ``mentioned_with``. An LLM
extractor (``llm_extract``) gives the same shapes when a chat model is configured; its
output is checked and a malformed answer is an error for the caller to record.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import unicodedata
from collections.abc import Collection, Iterable

__all__ = [
    "ENTITY_KINDS",
    "RELATION_KINDS",
    "ExtractedEntity",
    "ExtractedRelation",
    "Extraction",
    "MalformedExtraction",
    "extract",
    "llm_prompt",
    "normalize",
    "parse_llm_answer",
]

ENTITY_KINDS = ("person", "place", "organization", "thing", "event", "other")
RELATION_KINDS = (
    "family",
    "friend",
    "colleague",
    "partner",
    "pet",
    "works_at",
    "studies_at",
    "lives_in",
    "visited",
    "likes",
    "owns",
    "member_of",
    "mentions",
    "mentioned_with",
)

MAX_NAME = 80

# Capitalised words that start sentences or address people, not names.
_STOP_CAPS = frozenset(
    [
        "a",
        "an",
        "the",
        "i",
        "i'm",
        "i've",
        "i'd",
        "i'll",
        "im",
        "ive",
        "id",
        "me",
        "my",
        "mine",
        "we",
        "we're",
        "we've",
        "our",
        "ours",
        "us",
        "you",
        "you're",
        "your",
        "yours",
        "he",
        "he's",
        "his",
        "him",
        "she",
        "she's",
        "her",
        "hers",
        "it",
        "it's",
        "its",
        "they",
        "they're",
        "their",
        "them",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "what",
        "when",
        "where",
        "why",
        "how",
        "who",
        "whom",
        "which",
        "whose",
        "yes",
        "yeah",
        "yep",
        "no",
        "nope",
        "not",
        "oh",
        "ok",
        "okay",
        "hey",
        "hi",
        "hello",
        "thanks",
        "thank",
        "sorry",
        "please",
        "well",
        "so",
        "and",
        "but",
        "or",
        "also",
        "just",
        "then",
        "now",
        "today",
        "tonight",
        "tomorrow",
        "yesterday",
        "maybe",
        "sure",
        "wow",
        "great",
        "good",
        "nice",
        "cool",
        "awesome",
        "really",
        "actually",
        "anyway",
        "btw",
        "lol",
        "haha",
        "omg",
        "let",
        "let's",
        "did",
        "do",
        "does",
        "done",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "have",
        "has",
        "had",
        "will",
        "would",
        "can",
        "could",
        "should",
        "might",
        "must",
        "may",
        "if",
        "because",
        "as",
        "at",
        "by",
        "for",
        "from",
        "in",
        "into",
        "of",
        "on",
        "to",
        "with",
        "without",
        "about",
        "after",
        "before",
        "during",
        "since",
        "until",
        "while",
        "all",
        "any",
        "both",
        "each",
        "every",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "only",
        "own",
        "same",
        "than",
        "too",
        "very",
        "again",
        "once",
        "one",
        "two",
        "three",
        "four",
        "five",
        "first",
        "second",
        "last",
        "next",
        "new",
        "old",
        "mr",
        "mrs",
        "ms",
        "dr",
        "congrats",
        "congratulations",
        "happy",
        "merry",
        "dear",
        "love",
        "sounds",
        "glad",
        "absolutely",
        "definitely",
        "totally",
        "exactly",
        "true",
        "right",
        "lately",
        "recently",
        "speaking",
        "talking",
        "remember",
        "guess",
        "hope",
        "wish",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "spring",
        "summer",
        "autumn",
        "fall",
        "winter",
        "christmas",
        "easter",
        "weekend",
        "morning",
        "evening",
        "night",
        "afternoon",
    ]
)
_MONTHS_DAYS = frozenset(
    [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ]
)
_CONNECTORS = frozenset({"of", "de", "la", "du", "van", "von", "da", "del", "and", "&", "the"})
_ORG_SUFFIXES = frozenset(
    [
        "inc",
        "inc.",
        "corp",
        "corp.",
        "ltd",
        "ltd.",
        "llc",
        "gmbh",
        "university",
        "college",
        "school",
        "institute",
        "company",
        "co",
        "group",
        "bank",
        "hospital",
        "foundation",
        "club",
        "team",
        "association",
        "agency",
        "church",
        "museum",
    ]
)
_PLACE_WORDS = frozenset(
    [
        "city",
        "town",
        "street",
        "st",
        "avenue",
        "park",
        "lake",
        "river",
        "mountain",
        "beach",
        "island",
        "county",
        "state",
        "country",
        "valley",
        "bay",
        "airport",
        "station",
    ]
)
_HONORIFICS = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|Prof)\.?\s+$")

_FAMILY = (
    "sister|brother|mother|mom|mum|father|dad|son|daughter|wife|husband|grandma|grandmother|"
    "grandpa|grandfather|aunt|uncle|cousin|niece|nephew|parents|kids|children|baby"
)
_FRIEND = "friend|best friend|buddy|roommate|neighbor|neighbour"
_COLLEAGUE = "colleague|coworker|co-worker|boss|manager|mentor|teacher|coach|therapist|doctor"
_PARTNER = "partner|boyfriend|girlfriend|fiance|fiancee|fiancé|fiancée"
_PET = "dog|cat|puppy|kitten|pet|horse|parrot|rabbit|hamster"

_NAME = r"(?P<name>[A-Z][\w'\-]+(?:\s+[A-Z][\w'\-]+){0,2})"

_ROLE_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("family", "person", _FAMILY),
    ("friend", "person", _FRIEND),
    ("colleague", "person", _COLLEAGUE),
    ("partner", "person", _PARTNER),
    ("pet", "thing", _PET),
)
_ADJ = r"(?:(?:little|big|older|younger|best|new|old)\s+)?"
# "my <role> <Name>": the role names the relation, the name its object.
_ROLE_PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (kind, entity_kind, re.compile(rf"\b(?:[Mm]y|[Oo]ur)\s+{_ADJ}(?P<role>{roles}),?\s+{_NAME}"))
    for kind, entity_kind, roles in _ROLE_GROUPS
)


def _role_kind(role: str) -> tuple[str, str]:
    for kind, entity_kind, roles in _ROLE_GROUPS:
        if re.fullmatch(roles, role.casefold()):
            return kind, entity_kind
    return "friend", "person"


# "<Name> is my <role>"
_ROLE_AFTER = re.compile(
    rf"{_NAME}\s+(?:is|was)\s+my\s+{_ADJ}"
    rf"(?P<role>{_FAMILY}|{_FRIEND}|{_COLLEAGUE}|{_PARTNER}|{_PET})\b"
)
_PLACE_VERBS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "lives_in",
        re.compile(
            r"\b(?:live|lives|living|lived|moved|moving|move|relocated|grew up)"
            rf"\s+(?:to|in|into)\s+{_NAME}"
        ),
    ),
    (
        "visited",
        re.compile(
            r"\b(?:visit|visited|visiting|went to|trip to|travel(?:l)?ed to|travel(?:l)?ing to"
            rf"|flew to|vacation in|holiday in)\s+{_NAME}"
        ),
    ),
    (
        "works_at",
        re.compile(
            rf"\b(?:work|works|working|worked|job|intern|interning|internship)\s+(?:at|for|with)\s+{_NAME}"
        ),
    ),
    (
        "studies_at",
        re.compile(rf"\b(?:study|studies|studying|studied|enrolled|student)\s+(?:at|in)\s+{_NAME}"),
    ),
    (
        "member_of",
        re.compile(
            r"\b(?:joined|join|member of|part of|volunteer(?:ing|ed)? (?:at|with|for))"
            rf"\s+(?:the\s+)?{_NAME}"
        ),
    ),
)
# First-person activities and possessions without a capital letter: "my new guitar",
# "a pottery class", "I love hiking". Kept short: the object is one or two words.
_LOWER_OBJ = r"(?P<obj>[a-z][a-z\-]{2,}(?:\s+[a-z][a-z\-]{2,})?)"
_THING_PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    (
        "likes",
        "thing",
        re.compile(rf"\bI\s+(?:really\s+)?(?:love|like|enjoy|adore)\s+{_LOWER_OBJ}"),
    ),
    (
        "owns",
        "thing",
        re.compile(
            rf"\b(?:I\s+(?:bought|got|have|own)|my\s+new)\s+(?:a\s+|an\s+|the\s+)?{_LOWER_OBJ}"
        ),
    ),
    (
        "member_of",
        "event",
        re.compile(
            r"\b(?:a|an|the|my)\s+(?P<obj>[a-z][a-z\-]{2,}\s+(?:class|classes|course|workshop|club"
            r"|group|team|race|marathon|festival|concert|conference|camp|retreat|lessons))\b"
        ),
    ),
)
_LOWER_STOP = frozenset(
    [
        "it",
        "that",
        "this",
        "them",
        "you",
        "him",
        "her",
        "there",
        "here",
        "things",
        "thing",
        "stuff",
        "lot",
        "lots",
        "time",
        "times",
        "way",
        "the",
        "a",
        "an",
        "so",
        "very",
        "really",
        "much",
        "more",
        "many",
        "some",
    ]
)


@dataclasses.dataclass(frozen=True)
class ExtractedEntity:
    name: str
    key: str
    kind: str = "other"


@dataclasses.dataclass(frozen=True)
class ExtractedRelation:
    source: str  # entity key
    target: str  # entity key
    kind: str
    evidence: str = ""


@dataclasses.dataclass(frozen=True)
class Extraction:
    entities: tuple[ExtractedEntity, ...]
    relations: tuple[ExtractedRelation, ...]
    # Lone capitalised words at a sentence start ("Ana moved…", "Keep trying…"): names
    # only if known from elsewhere; pass them back as ``known`` to count them.
    deferred: tuple[str, ...] = ()

    def keys(self) -> set[str]:
        return {entity.key for entity in self.entities}


class MalformedExtraction(ValueError):
    """An extractor's answer that is not the JSON shape asked for."""


# Cached: an import normalizes the same few names (speakers, places) in every turn.
@functools.lru_cache(maxsize=8192)
def normalize(name: str) -> str:
    """The key two spellings of one entity share: case, accents and spacing folded."""
    folded = unicodedata.normalize("NFKD", name)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = re.sub(r"'s$|’s$", "", folded.strip())
    return re.sub(r"[\s\-_]+", " ", folded).strip(" .,!?;:'\"").casefold()[:MAX_NAME]


def _clean_name(raw: str) -> str:
    words = raw.strip(" .,!?;:'\"").split()
    while words and words[-1].casefold() in _CONNECTORS:
        words.pop()
    while words and words[0].casefold() in _STOP_CAPS:
        words.pop(0)
    name = " ".join(words)
    return re.sub(r"(?:'s|’s)$", "", name)[:MAX_NAME]


def _sentence_starts(text: str) -> set[int]:
    starts = {0}
    # "Dr. Okafor": the period of a title ends no sentence.
    ends = r"(?<!\bDr)(?<!\bMr)(?<!\bMs)(?<!\bMrs)(?<!\bProf)(?<!\bSt)[.!?]\s+"
    for match in re.finditer(ends + r"|\n+|[\"“(]\s*", text):
        starts.add(match.end())
    return starts


def _capitalised_phrases(text: str) -> Iterable[tuple[str, int, bool]]:
    """Runs of capitalised words (joined by 'of', 'de', '&' …): each with where it
    starts and whether it is one word opening a sentence."""
    token = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ][\w'’\-]*|&|\S")
    tokens = [(m.group(), m.start()) for m in token.finditer(text)]
    starts = _sentence_starts(text)
    i = 0
    while i < len(tokens):
        word, pos = tokens[i]
        if word[:1].isupper() and word[:1].isalpha():
            run = [(word, pos)]
            j = i + 1
            while j < len(tokens):
                nxt = tokens[j][0]
                if (nxt[:1].isupper() and nxt[:1].isalpha()) or (
                    nxt.casefold() in _CONNECTORS
                    and j + 1 < len(tokens)
                    and tokens[j + 1][0][:1].isupper()
                    and nxt.casefold() != "and"
                ):
                    run.append(tokens[j])
                    j += 1
                else:
                    break
            # A sentence-initial stop word ("The", "My") is dropped; the rest may be a name.
            while run and run[0][0].casefold().strip("'’") in _STOP_CAPS:
                run.pop(0)
            while run and (
                run[-1][0].casefold() in _CONNECTORS or run[-1][0].casefold() in _STOP_CAPS
            ):
                run.pop()
            if run:
                phrase = text[run[0][1] : run[-1][1] + len(run[-1][0])]
                sentence_initial = run[0][1] in starts and len(run) == 1
                yield phrase, run[0][1], sentence_initial
            i = j
        else:
            i += 1


def _kind_of(name: str, text: str, position: int) -> str:
    words = name.casefold().split()
    if words and (words[-1].strip(".") in _ORG_SUFFIXES or words[0] in _ORG_SUFFIXES):
        return "organization"
    if words and words[-1] in _PLACE_WORDS:
        return "place"
    before = text[max(0, position - 12) : position]
    if _HONORIFICS.search(before):
        return "person"
    if re.search(r"\b(?:in|at|to|from|near|around)\s+$", before):
        return "place"
    return "other"


_BEFORE = re.compile(
    r"(?P<word>[A-Za-z][\w'’\-]*)(?:\s+(?:has|had|have|now|just|also|still|finally|recently|already|will|is|was|'s))*\s+$"
)
_FIRST_PERSON = frozenset({"i", "we", "i've", "we've", "i'm", "we're"})
_THIRD_PERSON = frozenset({"he", "she", "they", "he's", "she's", "they're", "who"})


def _subject_before(text: str, start: int, speaker: str | None) -> str | None:
    """Who a verb at ``start`` is about: the name right before it ("Ana works at"), the
    speaker for "I"/"we" or no name; "she"/"they" name nobody we can tell (None)."""
    match = _BEFORE.search(text[max(0, start - 60) : start])
    if match is None:
        return speaker
    word = match.group("word")
    folded = word.casefold()
    if folded in _THIRD_PERSON:
        return None
    if word[:1].isupper() and folded not in _STOP_CAPS and folded not in _FIRST_PERSON:
        return word
    return speaker


def _speaker_key(speaker: str | None) -> ExtractedEntity | None:
    if not speaker:
        return None
    name = _clean_name(speaker)
    key = normalize(name)
    if not key or key in {"user", "assistant", "system", "tool"}:
        return None
    return ExtractedEntity(name=name, key=key, kind="person")


def extract(
    text: str, *, speaker: str | None = None, known: Collection[str] = frozenset()
) -> Extraction:
    """Entities and relations in ``text`` said by ``speaker`` (a person entity when named).

    ``known``: entity keys already seen (in other texts or the owner's graph); a lone
    capitalised word at a sentence start counts as a name only if it is known or written
    capitalised elsewhere in ``text``.
    """
    text = text or ""
    entities: dict[str, ExtractedEntity] = {}
    relations: dict[tuple[str, str, str], ExtractedRelation] = {}

    def add(name: str, kind: str, *, strong: bool = False) -> str | None:
        name = _clean_name(name)
        key = normalize(name)
        if not key or len(key) < 2 or key in _STOP_CAPS or key in _MONTHS_DAYS:
            return None
        known = entities.get(key)
        if known is None or (kind != "other" and (strong or known.kind == "other")):
            entities[key] = ExtractedEntity(name=known.name if known else name, key=key, kind=kind)
        return key

    def relate(source: str | None, target: str | None, kind: str, evidence: str) -> None:
        if source and target and source != target:
            relations.setdefault(
                (source, target, kind),
                ExtractedRelation(source=source, target=target, kind=kind, evidence=evidence[:200]),
            )

    deferred: list[str] = []
    capitalised = list(_capitalised_phrases(text))
    mid_sentence = {normalize(p) for p, _, initial in capitalised if not initial}
    for phrase, position, initial in capitalised:
        # A lone capitalised word at a sentence start counts only if the text also
        # capitalises it elsewhere, or it is not an ordinary word we know.
        key = normalize(phrase)
        if initial and key not in mid_sentence and key not in known:
            deferred.append(key)
            continue
        add(phrase, _kind_of(phrase, text, position))

    speaker_entity = _speaker_key(speaker)
    subject = None
    if speaker_entity is not None:
        entities.setdefault(speaker_entity.key, speaker_entity)
        subject = speaker_entity.key

    for kind, entity_kind, pattern in _ROLE_PATTERNS:
        for match in pattern.finditer(text):
            target = add(match.group("name"), entity_kind, strong=True)
            relate(subject, target, kind, match.group(0))
    for match in _ROLE_AFTER.finditer(text):
        kind, entity_kind = _role_kind(match.group("role"))
        target = add(match.group("name"), entity_kind, strong=True)
        relate(subject, target, kind, match.group(0))
    for kind, pattern in _PLACE_VERBS:
        for match in pattern.finditer(text):
            target_kind = "place" if kind in ("lives_in", "visited") else "organization"
            target = add(match.group("name"), target_kind, strong=True)
            who = _subject_before(text, match.start(), subject)
            if who is not None and who != subject:
                # "Ana moved to …": a name that does things is a person, even opening a sentence.
                who = add(who, "person")
            relate(who, target, kind, match.group(0))
    for kind, entity_kind, pattern in _THING_PATTERNS:
        for match in pattern.finditer(text):
            obj = match.group("obj").strip()
            if obj.split()[0] in _LOWER_STOP or obj.split()[-1] in _LOWER_STOP:
                continue
            target = add(obj, entity_kind)
            relate(subject, target, kind, match.group(0))

    keys = sorted(entities)
    if subject is not None:
        for key in keys:
            if key != subject and not any(r[0] == subject and r[1] == key for r in relations):
                relate(subject, key, "mentions", "")
    others = [k for k in keys if k != subject]
    for index, left in enumerate(others):
        for right in others[index + 1 :]:
            relate(left, right, "mentioned_with", "")
    return Extraction(
        entities=tuple(entities[k] for k in keys),
        relations=tuple(relations[k] for k in sorted(relations)),
        deferred=tuple(sorted(set(deferred) - set(keys))),
    )


def llm_prompt(text: str, *, speaker: str | None = None) -> list[dict[str, str]]:
    """Chat messages asking a model for the same shapes ``extract`` returns, as JSON."""
    system = (
        "Extract named entities and relations from the user's text. Answer with JSON only: "
        '{"entities": [{"name": str, "kind": one of '
        + json.dumps(list(ENTITY_KINDS))
        + '}], "relations": [{"source": entity name, "target": entity name, "kind": one of '
        + json.dumps(list(RELATION_KINDS))
        + "}]}. The speaker, when named, is an entity of kind person."
    )
    said = f"{speaker}: {text}" if speaker else text
    return [{"role": "system", "content": system}, {"role": "user", "content": said}]


def parse_llm_answer(answer: str, *, speaker: str | None = None) -> Extraction:
    """The model's JSON answer as an ``Extraction``; otherwise ``MalformedExtraction``."""
    body = (answer or "").strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.S)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except ValueError as error:
        raise MalformedExtraction(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise MalformedExtraction("the answer is not a JSON object")
    raw_entities = data.get("entities", [])
    raw_relations = data.get("relations", [])
    if not isinstance(raw_entities, list) or not isinstance(raw_relations, list):
        raise MalformedExtraction("'entities' and 'relations' must be lists")
    entities: dict[str, ExtractedEntity] = {}
    for index, item in enumerate(raw_entities):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise MalformedExtraction(f"entities[{index}] needs a string 'name'")
        kind = item.get("kind", "other")
        kind = kind if kind in ENTITY_KINDS else "other"
        name = _clean_name(item["name"]) or item["name"].strip()[:MAX_NAME]
        key = normalize(name)
        if key:
            entities.setdefault(key, ExtractedEntity(name=name, key=key, kind=kind))
    speaker_entity = _speaker_key(speaker)
    if speaker_entity is not None:
        entities.setdefault(speaker_entity.key, speaker_entity)
    relations: dict[tuple[str, str, str], ExtractedRelation] = {}
    for index, item in enumerate(raw_relations):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(f), str) for f in ("source", "target")
        ):
            raise MalformedExtraction(f"relations[{index}] needs string 'source' and 'target'")
        kind = item.get("kind", "mentioned_with")
        kind = kind if kind in RELATION_KINDS else "mentioned_with"
        source, target = normalize(item["source"]), normalize(item["target"])
        for key, name in ((source, item["source"]), (target, item["target"])):
            if key and key not in entities:
                entities[key] = ExtractedEntity(name=name.strip()[:MAX_NAME], key=key)
        if source and target and source != target:
            relations.setdefault(
                (source, target, kind), ExtractedRelation(source=source, target=target, kind=kind)
            )
    return Extraction(
        entities=tuple(entities[k] for k in sorted(entities)),
        relations=tuple(relations[k] for k in sorted(relations)),
    )
