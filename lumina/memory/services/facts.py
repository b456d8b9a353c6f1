"""Fact extraction: candidate facts from turns, by rules always and by a chat model when one
is configured.

The rules read first-person statements ("I live in Lisbon", "my dog is called Rex") and
name the speaker as the subject. Each candidate has a key (``subject|attribute``) and a
value; single-valued attributes (where someone lives, works, their partner) hold one value
at a time, so a new value supersedes the old, while multi-valued ones (what someone likes,
has, visited) accumulate. The chat model is asked for the same shape as JSON; an answer
that is not that JSON is recorded as an ``ExtractionError`` with the turns it was about,
and the rules' facts are kept: nothing is dropped because an extractor failed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import structlog

from lumina.kernel.errors import ApplicationError
from lumina.memory.models.records import ExtractionError
from lumina.providers.api import complete, real_chat_model_available
from lumina.security.api import Actor

logger = structlog.get_logger(__name__)

EXTRACTOR_ACTOR = Actor.system("memory")
RULES, LLM = "rules", "llm"
MAX_RAW_OUTPUT = 4000
MAX_VALUE_WORDS = 8
# Speakers whose turns state no facts about a person.
NON_PERSONS = frozenset({"assistant", "ai", "bot", "system", "tool", "model"})
GENERIC_SPEAKERS = frozenset({"", "user", "human", "me", "you"})


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A fact that consolidation will compare with the facts already known."""

    subject: str
    attribute: str
    value: str
    text: str
    single_valued: bool
    importance: float
    turn_ids: tuple[uuid.UUID, ...]
    occurred_at: dt.datetime
    agent_id: str = ""
    session_id: str = ""
    extracted_by: str = RULES

    @property
    def key(self) -> str:
        return f"{normalise(self.subject)}|{normalise(self.attribute)}"

    @property
    def norm_value(self) -> str:
        return normalise(self.value)


@dataclasses.dataclass(frozen=True)
class TurnForExtraction:
    id: uuid.UUID
    speaker: str
    text: str
    occurred_at: dt.datetime
    agent_id: str = ""
    session_id: str = ""


def normalise(value: str) -> str:
    value = re.sub(r"[^\w\s'-]", " ", value.lower())
    value = re.sub(r"^(a|an|the|my|our)\s+", "", value.strip())
    return re.sub(r"\s+", " ", value).strip()


def subject_of(speaker: str) -> str:
    name = speaker.strip()
    return "User" if name.lower() in GENERIC_SPEAKERS else name


# --- Rules -------------------------------------------------------------------------------

_VALUE = r"(?P<value>[^.,;!?\n]{1,80}?)"
_END = (
    r"(?=\s+(?:and|but|because|since|so|which|who|where|when|while|though|although|for|as|"
    r"with|near|during|after|before|until|at)\b|[.,;!?\n]|$)"
)
_I = r"(?:^|[.!?]\s+|\b)(?:i|we)"
_IM = r"(?:i\s*'?\s*m|i\s+am|we\s*'?\s*re|we\s+are)"
_FAMILY = (
    r"wife|husband|partner|boyfriend|girlfriend|fianc[eé]e?|mother|father|mom|mum|dad|"
    r"son|daughter|brother|sister|dog|cat|puppy|kitten|pet|best friend|boss"
)
_SINGLE_FAMILY = frozenset(
    {"wife", "husband", "partner", "boyfriend", "girlfriend", "fiance", "fiancee", "fiancé",
     "fiancée", "mother", "father", "mom", "mum", "dad", "boss"}
)  # fmt: skip

# (pattern, attribute, fact template, single-valued, importance)
_RULES: list[tuple[re.Pattern[str], str, str, bool, float]] = [
    (rf"\bmy name is {_VALUE}{_END}", "name", "{s}'s name is {v}", True, 0.9),
    (rf"{_I}\s+(?:now\s+)?(?:live|am living|'m living)\s+in\s+{_VALUE}{_END}", "lives_in",
     "{s} lives in {v}", True, 0.8),
    (rf"{_I}\s+(?:just\s+|recently\s+)?(?:moved|relocated)\s+to\s+{_VALUE}{_END}", "lives_in",
     "{s} lives in {v}", True, 0.8),
    (rf"{_I}\s+(?:now\s+)?work\s+(?:at|for)\s+{_VALUE}{_END}", "works_at", "{s} works at {v}",
     True, 0.8),
    (rf"{_I}\s+(?:now\s+)?work\s+as\s+{_VALUE}{_END}", "job", "{s} works as {v}", True, 0.8),
    (rf"\bmy\s+job\s+is\s+{_VALUE}{_END}", "job", "{s} works as {v}", True, 0.8),
    (rf"\b{_IM}\s+(?P<value>\d{{1,3}})\s+years?\s+old\b", "age", "{s} is {v} years old",
     True, 0.6),
    (rf"\b{_IM}\s+married\s+to\s+{_VALUE}{_END}", "partner", "{s} is married to {v}", True,
     0.8),
    (rf"\bmy\s+birthday\s+is\s+(?:on\s+)?{_VALUE}{_END}", "birthday", "{s}'s birthday is {v}",
     True, 0.7),
    (rf"\bmy\s+favou?rite\s+(?P<thing>[a-z ]{{2,30}}?)\s+is\s+{_VALUE}{_END}",
     "favorite_{thing}", "{s}'s favorite {thing} is {v}", True, 0.6),
    (rf"\bmy\s+(?P<thing>{_FAMILY})(?:'s\s+name)?\s+is\s+(?:called\s+|named\s+)?"
     rf"(?P<value>[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?){_END}", "{thing}",
     "{s}'s {thing} is {v}", False, 0.7),
    (rf"\b{_IM}\s+allergic\s+to\s+{_VALUE}{_END}", "allergic_to", "{s} is allergic to {v}",
     False, 0.8),
    (rf"{_I}\s+(?:really\s+|absolutely\s+)?(?:love|like|enjoy|adore)\s+{_VALUE}{_END}", "likes",
     "{s} likes {v}", False, 0.6),
    (rf"{_I}\s+(?:really\s+)?(?:hate|dislike|can't stand|do not like|don't like)\s+{_VALUE}{_END}",
     "dislikes", "{s} dislikes {v}", False, 0.6),
    (rf"{_I}\s+(?:have|own|adopted|got)\s+(?P<value>(?:a|an|two|three|\d+)\s+[^.,;!?\n]{{1,60}}?){_END}",
     "has", "{s} has {v}", False, 0.5),
    (rf"{_I}\s+(?:speak|am learning|'m learning|study|studied)\s+{_VALUE}{_END}", "studies",
     "{s} studies {v}", False, 0.5),
    (rf"{_I}\s+(?:play|played)\s+(?:the\s+)?{_VALUE}{_END}", "plays", "{s} plays {v}", False,
     0.5),
    (rf"{_I}\s+(?:visited|went to|travel(?:l)?ed to|have been to)\s+{_VALUE}{_END}", "visited",
     "{s} visited {v}", False, 0.5),
]  # fmt: skip
_COMPILED = [
    (re.compile(pattern, re.IGNORECASE), attribute, template, single, importance)
    for pattern, attribute, template, single, importance in _RULES
]
# Values that are pronouns or fillers, not facts ("I like it", "I have a question").
_VAGUE = frozenset(
    {"it", "that", "this", "them", "those", "these", "him", "her", "you", "a question",
     "an idea", "a lot", "to", "so", "too", "a feeling", "no idea", "a minute", "a moment"}
)  # fmt: skip


_TRAILING_TIME = re.compile(
    r"\s+(?:last|this|next)\s+\w+$|\s+(?:yesterday|today|tonight|recently|now|again|"
    r"anymore|already|still|anyway|though|actually|too|as well|a lot|so much|very much)$|"
    r"(?:\s+\w+){1,2}\s+ago$",
    re.IGNORECASE,
)
_VAGUE_START = re.compile(
    r"^(?:a|an)\s+(?:question|idea|feeling|lot|bit|few|minute|moment)\b", re.I
)


_MY = re.compile(r"^(?:my|our)\s+", re.IGNORECASE)


def _clean_value(raw: str) -> str | None:
    value = raw.strip().strip("'\"").strip()
    while (trimmed := _TRAILING_TIME.sub("", value)) != value:
        value = trimmed
    if _VAGUE_START.match(value):
        return None
    words = value.split()
    if not words or len(words) > MAX_VALUE_WORDS:
        return None
    if normalise(value) in _VAGUE or value.lower() in _VAGUE:
        return None
    return value


def rules_extract(turns: Iterable[TurnForExtraction]) -> list[Candidate]:
    """Candidate facts from first-person statements, in turn order."""
    found: list[Candidate] = []
    for turn in turns:
        if turn.speaker.strip().lower() in NON_PERSONS:
            continue
        subject = subject_of(turn.speaker)
        seen: set[tuple[str, str]] = set()
        for pattern, attribute, template, single, importance in _COMPILED:
            for match in pattern.finditer(turn.text):
                value = _clean_value(match.group("value"))
                if value is None:
                    continue
                # "I visited my parents": the speaker's parents, in a fact about the speaker.
                value = _MY.sub(f"{subject}'s ", value)
                groups = match.groupdict()
                thing = normalise(groups.get("thing") or "")
                name = attribute.format(thing=thing.replace(" ", "_"))
                is_single = single or (attribute == "{thing}" and thing in _SINGLE_FAMILY)
                if (name, normalise(value)) in seen:
                    continue
                seen.add((name, normalise(value)))
                found.append(
                    Candidate(
                        subject=subject,
                        attribute=name,
                        value=value,
                        text=template.format(s=subject, v=value, thing=thing),
                        single_valued=is_single,
                        importance=importance,
                        turn_ids=(turn.id,),
                        occurred_at=turn.occurred_at,
                        agent_id=turn.agent_id,
                        session_id=turn.session_id,
                    )
                )
    return found


# --- A chat model ------------------------------------------------------------------------

EXTRACTION_PROMPT = """You extract durable facts about people from a conversation.
Answer with JSON only, exactly this shape:
{"facts": [{"turn": <index of the turn it comes from>, "subject": "<person>",
"attribute": "<snake_case attribute, e.g. lives_in, works_at, likes>", "value": "<value>",
"single_valued": <true if the person has one value at a time>, "importance": <0..1>}]}
Use {"facts": []} when there is nothing durable. The turns, numbered:"""


def llm_available() -> bool:
    try:
        return real_chat_model_available()
    except Exception:
        logger.exception("could not tell whether a chat model is configured")
        return False


def _answer_text(answer: dict[str, Any]) -> str:
    try:
        return str(answer["choices"][0]["message"]["content"] or "")
    except (KeyError, IndexError, TypeError):
        return json.dumps(answer)[:MAX_RAW_OUTPUT]


def parse_json_answer(text: str) -> Any:
    """The JSON of a model's answer, allowing a fenced code block around it."""
    stripped = text.strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", stripped, re.DOTALL)
    return json.loads(fenced.group(1) if fenced else stripped)


def extraction_error_record(
    *, owner_id: uuid.UUID, extractor: str, turn_ids: Sequence[uuid.UUID], error: str, raw: str
) -> ExtractionError:
    logger.warning("fact extraction failed", extractor=extractor, turns=len(turn_ids))
    return ExtractionError.objects.create(
        owner_id=owner_id,
        extractor=extractor,
        turn_ids=list(turn_ids),
        error=error[:2000],
        raw_output=raw[:MAX_RAW_OUTPUT],
    )


def llm_extract(turns: Sequence[TurnForExtraction], *, owner_id: uuid.UUID) -> list[Candidate]:
    """Candidate facts from a chat model; a failed or malformed answer is recorded as an
    ``ExtractionError`` naming the turns, and no candidate comes from it."""
    if not turns:
        return []
    numbered = "\n".join(
        f"{index}. [{turn.occurred_at.date().isoformat()}] {turn.speaker or 'user'}: {turn.text}"
        for index, turn in enumerate(turns)
    )
    messages = [
        {"role": "system", "content": EXTRACTION_PROMPT},
        {"role": "user", "content": numbered},
    ]
    turn_ids = [turn.id for turn in turns]
    raw = ""
    try:
        answer = complete(messages, actor=EXTRACTOR_ACTOR, temperature=0)
        raw = _answer_text(answer)
        facts = parse_json_answer(raw)["facts"]
        if not isinstance(facts, list):
            raise TypeError("'facts' is not a list")
        return [_llm_candidate(item, turns) for item in facts]
    except ApplicationError as error:
        extraction_error_record(
            owner_id=owner_id, extractor=LLM, turn_ids=turn_ids, error=error.message, raw=raw
        )
    except (ValueError, KeyError, TypeError, IndexError) as error:
        extraction_error_record(
            owner_id=owner_id,
            extractor=LLM,
            turn_ids=turn_ids,
            error=f"malformed answer: {type(error).__name__}: {error}",
            raw=raw,
        )
    return []


def _llm_candidate(item: Any, turns: Sequence[TurnForExtraction]) -> Candidate:
    if not isinstance(item, dict):
        raise TypeError("a fact is not an object")
    turn = turns[int(item["turn"])]
    subject = str(item["subject"]).strip()
    attribute = re.sub(r"\W+", "_", str(item["attribute"]).strip().lower()).strip("_")
    value = str(item["value"]).strip()
    if not subject or not attribute or not value:
        raise ValueError("a fact lacks its subject, attribute or value")
    importance = float(item.get("importance", 0.5))
    if not 0 <= importance <= 1:
        raise ValueError("importance is not between 0 and 1")
    return Candidate(
        subject=subject,
        attribute=attribute,
        value=value,
        text=f"{subject} {attribute.replace('_', ' ')}: {value}",
        single_valued=bool(item.get("single_valued", False)),
        importance=importance,
        turn_ids=(turn.id,),
        occurred_at=turn.occurred_at,
        agent_id=turn.agent_id,
        session_id=turn.session_id,
        extracted_by=LLM,
    )
