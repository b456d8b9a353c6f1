"""Cedar, the policy language of Lumina's attribute-based rules: schema, validation, evaluation.

Entity model (see docs/adr/0004-policy-engine-cedar.md):

* principal ``Lumina::User::"<uuid>"`` or ``Lumina::System::"<context>"``, both with the
  attributes id (the uuid, or the context), email, roles, is_staff, is_superuser,
  mfa_verified, token_scopes, via_token (a system principal has neutral values);
* action ``Lumina::Action::"<permission name>"``, one per declared permission;
* resource ``Lumina::Resource::"<type>:<id>"`` with ``type``, ``id`` and whatever
  attributes the owning context passes (open: the validator does not know them);
* context ``{ip, scopes, caller_context}``.

Lumina policies only forbid. At evaluation a built-in ``permit`` stands for the allow
that RBAC already gave, so Cedar answers "allowed unless some policy forbids".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Imported where used: cedarpy (~4 MiB, native) loads with the first policy checked
    # or evaluated, not in every process that imports the authorisation service.
    import cedarpy
    from cedarpy import pst

NAMESPACE = "Lumina"
USER = f"{NAMESPACE}::User"
SYSTEM = f"{NAMESPACE}::System"
ACTION = f"{NAMESPACE}::Action"
RESOURCE = f"{NAMESPACE}::Resource"
# Id of the built-in permit that stands for "RBAC allowed".
RBAC_PERMIT_ID = "rbac"
# The Cedar id of statement ``index`` of a rule is "<rule>#<index>".
_STATEMENT_SEPARATOR = "#"

_STRING = {"type": "String"}
_STRINGS = {"type": "Set", "element": _STRING}
_BOOL = {"type": "Boolean"}
PRINCIPAL_SHAPE = {
    "type": "Record",
    "attributes": {
        "id": _STRING,
        "email": _STRING,
        "roles": _STRINGS,
        "is_staff": _BOOL,
        "is_superuser": _BOOL,
        "mfa_verified": _BOOL,
        "token_scopes": _STRINGS,
        "via_token": _BOOL,
    },
}
CONTEXT_SHAPE = {
    "type": "Record",
    "attributes": {"ip": _STRING, "scopes": _STRINGS, "caller_context": _STRING},
}
# The validator knows no resource attributes beyond type and id; those it reports as
# missing are the open ones contexts pass at run time, so they are not errors.
_OPEN_RESOURCE_ATTRIBUTE = re.compile(rf"attribute `[^`]*` on entity type `{RESOURCE}` not found")
_POLICY_PREFIX = re.compile(r"^for policy `(policy\d+)`, ")
_ERRORING_POLICY = re.compile(r"policy `([^`]+)`")
_END_OF_INPUT = "unexpected end of input"
_MAX_ERROR_CHARS = 300
# The rule named when Cedar cannot evaluate the request at all.
REQUEST_ERROR = "policies"
_UNEXPECTED_TOKEN = re.compile(r"^unexpected token `([^`]+)`")
_I64 = 2**63
_DECIMAL_LIMIT = decimal.Decimal("922337203685477.5807")


class PolicyTextError(ValueError):
    """Cedar text that cannot be put in force; ``problems`` are "line L, column C: message"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0])
        self.problems = problems


@dataclasses.dataclass(frozen=True)
class Statement:
    """One Cedar statement of a stored policy, renamed to say which rule it belongs to."""

    rule: str
    node: pst.Template
    # The actions the statement's scope names; None when it applies to every action.
    actions: frozenset[str] | None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the policies said about one request."""

    forbidding: tuple[str, ...]
    # (rule, message) for statements that could not be evaluated.
    errors: tuple[tuple[str, str], ...]

    @property
    def allowed(self) -> bool:
        # A forbid that errors is treated as matching: a broken rule fails closed.
        return not self.forbidding and not self.errors


# --- Schema -----------------------------------------------------------------------------


@lru_cache(maxsize=8)
def schema_json(actions: tuple[str, ...]) -> str:
    """The Cedar schema (JSON) for Lumina's entity model and the given action names."""
    applies_to = {
        "principalTypes": ["User", "System"],
        "resourceTypes": ["Resource"],
        "context": CONTEXT_SHAPE,
    }
    resource_shape = {"type": "Record", "attributes": {"type": _STRING, "id": _STRING}}
    return json.dumps(
        {
            NAMESPACE: {
                "entityTypes": {
                    "User": {"shape": PRINCIPAL_SHAPE},
                    "System": {"shape": PRINCIPAL_SHAPE},
                    "Resource": {"shape": resource_shape},
                },
                "actions": {action: {"appliesTo": applies_to} for action in actions},
            }
        }
    )


@lru_cache(maxsize=8)
def _schema(actions: tuple[str, ...]) -> cedarpy.Schema:
    import cedarpy

    return cedarpy.Schema.from_json_str(schema_json(actions))


def schema_text(actions: tuple[str, ...]) -> str:
    """The same schema in Cedar's human-readable syntax, for policy authors."""
    return str(_schema(actions))


# --- Validation -------------------------------------------------------------------------


def validate(text: str, actions: tuple[str, ...], exempt: frozenset[str] = frozenset()) -> int:
    """Check policy text for use in Lumina; return its number of statements.

    Raises ``PolicyTextError`` with line/column positions: syntax errors, templates,
    ``permit`` statements (policies may only restrict), statements naming an ``exempt``
    action (one policies never apply to) and schema violations (unknown actions,
    principal or context attributes, type errors).
    """
    import cedarpy

    try:
        tree = cedarpy.policies_to_pst(text)
    except ValueError as error:
        raise PolicyTextError([_at(text, _locate(text, str(error)), str(error))]) from None
    starts = _statement_starts(text)
    problems = [
        _at(text, _start_of(starts, key), "templates (?principal, ?resource) are not supported")
        for key in tree.templates
    ]
    statements = sorted(tree.static_policies.items(), key=lambda item: _index(item[0]))
    if not statements and not problems:
        problems.append(_at(text, 0, "a policy needs at least one statement"))
    problems += [
        _at(
            text,
            _start_of(starts, key),
            "only forbid statements are allowed: grant access with roles or object grants",
        )
        for key, node in statements
        if node.effect == "permit"
    ]
    problems += [
        _at(
            text,
            _start_of(starts, key),
            f"{', '.join(sorted(named & exempt))} is decided by roles alone, not policies",
        )
        for key, node in statements
        if (named := _actions(node) or frozenset()) & exempt
    ]
    if problems:
        raise PolicyTextError(problems)
    result = cedarpy.validate_policies(text, _schema(actions))
    for error in result.errors:
        message = error.error
        if _OPEN_RESOURCE_ATTRIBUTE.search(message):
            continue
        match = _POLICY_PREFIX.match(message)
        if match:
            message = message[match.end() :]
        key = error.policy_id or (match.group(1) if match else "")
        offset = _start_of(starts, key) if key else 0
        problems.append(_at(text, offset, message))
    if problems:
        raise PolicyTextError(problems)
    return len(statements)


def _index(policy_key: str) -> int:
    return int(policy_key.removeprefix("policy"))


def _start_of(starts: list[int], policy_key: str) -> int:
    try:
        index = _index(policy_key)
    except ValueError:  # not a positional id: no statement to point at
        return 0
    return starts[index] if index < len(starts) else 0


def _at(text: str, offset: int, message: str) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}: {message}"


def _scan(text: str) -> tuple[list[int], list[int]]:
    """Offsets where statements start, and offsets where the text may be cut between tokens.

    Only strings and ``//`` comments need care: outside them a ``;`` ends a statement.
    """
    starts: list[int] = []
    cuts: list[int] = []
    expecting = True
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        if text.startswith("//", index):
            end = text.find("\n", index)
            index = size if end == -1 else end
            continue
        if char.isspace():
            index += 1
            cuts.append(index)
            continue
        if expecting:
            starts.append(index)
            expecting = False
        if char == '"':
            quote = index
            index += 1
            while index < size and text[index] != '"':
                index += 2 if text[index] == "\\" else 1
            index += 1
            # An unterminated string is reported at its opening quote.
            cuts.append(index if index <= size else quote + 1)
            continue
        index += 1
        if char in ";)}],":
            cuts.append(index)
        if char == ";":
            expecting = True
    return starts, cuts


def _statement_starts(text: str) -> list[int]:
    return _scan(text)[0]


def _fails_before_end(text: str) -> bool:
    import cedarpy

    try:
        cedarpy.policies_to_json_str(text)
    except ValueError as error:
        return _END_OF_INPUT not in str(error)
    return False


def _locate(text: str, message: str) -> int:
    """The offset of the token Cedar's parser stopped at (Cedar's message has no position).

    Parses ever longer prefixes cut between tokens: the shortest failing one ends with
    the offending token. An error found only once a statement is complete (a bad
    variable, a bad escape) is placed at the statement's start.
    """
    starts, cuts = _scan(text)
    cuts = sorted({cut for cut in cuts if cut <= len(text)} | {len(text)})
    low, high = 0, len(cuts) - 1
    while low < high:
        middle = (low + high) // 2
        if _fails_before_end(text[: cuts[middle]]):
            high = middle
        else:
            low = middle + 1
    prefix = text[: cuts[low]].rstrip()
    if not prefix:
        return 0
    token = _UNEXPECTED_TOKEN.match(message)
    if token and token.group(1) in prefix:
        # The parser may read on past the token it names (up to the next ";").
        return prefix.rfind(token.group(1))
    offset = len(prefix) - 1
    if text[offset] == ";" and _END_OF_INPUT not in message:
        return max((start for start in starts if start <= offset), default=0)
    return offset


# --- Compilation ------------------------------------------------------------------------


def statements(text: str, rule: str) -> list[Statement]:
    """The statements of stored policy text, each tagged with ``rule``."""
    import cedarpy

    tree = cedarpy.policies_to_pst(text)
    result = []
    for key, node in sorted(tree.static_policies.items(), key=lambda item: _index(item[0])):
        cedar_id = f"{rule}{_STATEMENT_SEPARATOR}{_index(key)}"
        result.append(Statement(rule, dataclasses.replace(node, id=cedar_id), _actions(node)))
    return result


def _actions(node: pst.Template) -> frozenset[str] | None:
    from cedarpy import pst

    constraint = node.action
    if isinstance(constraint, pst.ActionEq):
        return frozenset({constraint.entity.id})
    if isinstance(constraint, pst.ActionIn):
        return frozenset(entity.id for entity in constraint.entities)
    return None


@lru_cache(maxsize=1)
def _rbac_permit() -> pst.Template:
    import cedarpy

    node = cedarpy.policies_to_pst("permit(principal, action, resource);").static_policies
    return dataclasses.replace(next(iter(node.values())), id=RBAC_PERMIT_ID)


class CompiledPolicies:
    """The enabled policies, indexed by action; a Cedar policy set is built once per action."""

    def __init__(self, loaded: Iterable[Statement], broken: Iterable[tuple[str, str]] = ()) -> None:
        self._every_action: list[Statement] = []
        self._by_action: dict[str, list[Statement]] = {}
        for statement in loaded:
            if statement.actions is None:
                self._every_action.append(statement)
            else:
                for action in statement.actions:
                    self._by_action.setdefault(action, []).append(statement)
        # Stored policies that no longer parse: they refuse everything until fixed.
        self.broken = tuple(broken)
        self._sets: dict[str, tuple[cedarpy.PolicySet, tuple[str, ...]] | None] = {}

    def for_action(self, action: str) -> tuple[cedarpy.PolicySet, tuple[str, ...]] | None:
        """The policy set and rule names that apply to ``action``, or None if none does."""
        import cedarpy
        from cedarpy import pst

        try:
            return self._sets[action]
        except KeyError:
            pass
        applicable = self._every_action + self._by_action.get(action, [])
        compiled = None
        if applicable:
            nodes = {RBAC_PERMIT_ID: _rbac_permit()}
            nodes.update({statement.node.id: statement.node for statement in applicable})
            tree = pst.PolicySet(
                templates=pst.FrozenMap(), static_policies=pst.FrozenMap(nodes), template_links=()
            )
            rules = tuple(dict.fromkeys(statement.rule for statement in applicable))
            compiled = (cedarpy.PolicySet.from_pst(tree), rules)
        self._sets[action] = compiled
        return compiled


# --- Evaluation -------------------------------------------------------------------------


def evaluate(
    policy_set: cedarpy.PolicySet,
    *,
    principal: tuple[str, str],
    principal_attributes: Mapping[str, Any],
    action: str,
    resource_type: str | None,
    resource_id: str | None,
    resource_attributes: Mapping[str, Any],
    context: Mapping[str, Any],
) -> Outcome:
    """Run ``policy_set`` for one request; ``principal`` is (entity type, id)."""
    import cedarpy

    resource_uid = {"type": RESOURCE, "id": f"{resource_type or ''}:{resource_id or ''}"}
    attributes = _record(resource_attributes)
    attributes.update(type=resource_type or "", id=resource_id or "")
    principal_uid = {"type": principal[0], "id": principal[1]}
    entities = [
        {"uid": principal_uid, "attrs": _record(principal_attributes), "parents": []},
        {"uid": resource_uid, "attrs": attributes, "parents": []},
    ]
    request = {
        "principal": principal_uid,
        "action": {"type": ACTION, "id": action},
        "resource": resource_uid,
        "context": _record(context),
    }
    answer = cedarpy.is_authorized(request, policy_set, json.dumps(entities))
    forbidding = () if answer.allowed else _rules(answer.diagnostics.reasons)
    errors = []
    for message in answer.diagnostics.errors:
        match = _ERRORING_POLICY.search(message)
        # An error naming no policy is about the request itself (entities Cedar refused).
        rule = _rule_of(match.group(1)) if match else REQUEST_ERROR
        # Cedar may quote the whole request back; the first line says what went wrong.
        errors.append((rule, message.split("\n", 1)[0][:_MAX_ERROR_CHARS]))
    return Outcome(forbidding=forbidding, errors=tuple(errors))


def _rule_of(cedar_id: str) -> str:
    return cedar_id.rpartition(_STATEMENT_SEPARATOR)[0] or cedar_id


def _rules(cedar_ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_rule_of(cedar_id) for cedar_id in cedar_ids))


def _record(values: Mapping[str, Any]) -> dict[str, Any]:
    record = {}
    for key, value in values.items():
        # "__entity" / "__extn" keys are Cedar's JSON escapes: data must not forge an
        # entity reference (say, an owner equal to the principal) or an extension value.
        if str(key).startswith("__"):
            continue
        converted = _value(value)
        if converted is not None:
            record[str(key)] = converted
    return record


def _value(value: Any) -> Any:
    """A Python value as a Cedar JSON value; None drops the attribute."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -_I64 <= value < _I64 else str(value)
    if isinstance(value, float | decimal.Decimal):
        try:
            number = decimal.Decimal(str(value)).quantize(decimal.Decimal("0.0001"))
        except decimal.InvalidOperation:
            return str(value)
        if abs(number) > _DECIMAL_LIMIT:
            return str(value)
        return {"__extn": {"fn": "decimal", "arg": str(number)}}
    if isinstance(value, Mapping):
        return _record(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = [_value(item) for item in value]
        return [item for item in items if item is not None]
    if isinstance(value, uuid.UUID | dt.date | dt.datetime):
        return str(value) if isinstance(value, uuid.UUID) else value.isoformat()
    return str(value)
