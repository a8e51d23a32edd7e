"""Messages of refused requests (syntax, validation, variables) that never quote a value.

graphql-core's messages repeat the offending input: "..., found: {'patientRef': ...}" for a
variable, "String cannot represent a non string value: 123456" for a literal, "found String
'...'" for a syntax error. A value may be patient data or a check code, and error messages
end up in clients' logs, proxies' logs and bug reports. These functions keep what a person
needs to fix the request — the variable, the path inside it, the type and the problem — and
drop the value.

Variable errors are rewritten from a list of known problems only: an unknown one becomes a
generic "does not fit" rather than risk an echo. Other messages lose the value part of the
known value-carrying forms; the remaining validation messages name only schema elements and
names from the operation text.
"""

import re
from collections.abc import Callable
from typing import Final

_TYPE: Final = r"'[\w!\[\]]+'"
# graphql-core's print_path_list: " at [0].body" — indices and schema field names only.
_VARIABLE: Final = re.compile(
    r"(?P<head>Variable '\$\w+' has invalid (?:default )?value(?: at [\w.\[\]]+)?)"
    r": (?P<problem>.*)",
    re.S,
)
_SUGGESTION: Final = re.compile(r" ?Did you mean [^?]*\?")
_NAME: Final = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_FOUND: Final = r"(?:, but encountered error '.*'; found|, found|\. Found): .*"
_SYNTAX_VALUE: Final = re.compile(r"(?P<kind>String|BlockString|Int|Float|Name) '.*|: '.*", re.S)


def _unknown_field(match: re.Match[str]) -> str:
    # The unknown field's name is a key the client sent: it is only repeated when it looks
    # like a field name, never when it could be a value sent in the wrong place.
    field = match["field"]
    named = f"field '{field}'" if _NAME.fullmatch(field) else "field"
    return f"Expected value of type {match['type']} not to include unknown {named}."


_Rewrite = Callable[[re.Match[str]], str]


def _keep(group: str) -> _Rewrite:
    return lambda match: match[group] + "."


# Each problem graphql-core (3.3) reports about an input value, and its value-free form.
_PROBLEMS: Final[tuple[tuple[re.Pattern[str], _Rewrite], ...]] = (
    (
        re.compile(rf"(?P<m>Expected a value of non-null type {_TYPE} to be provided)\."),
        _keep("m"),
    ),
    (re.compile(rf"(?P<m>Expected value of non-null type {_TYPE} not to be None)\."), _keep("m")),
    (
        re.compile(rf"(?P<m>Expected value of type {_TYPE} to be an object){_FOUND}", re.S),
        _keep("m"),
    ),
    (
        re.compile(
            rf"(?P<m>Expected value of type {_TYPE} to include required field '\w+'){_FOUND}",
            re.S,
        ),
        _keep("m"),
    ),
    (
        re.compile(
            rf"Expected value of type (?P<type>{_TYPE}) not to include unknown field"
            rf" '(?P<field>.*)'(?:\.(?P<hint> Did you mean [^?]*\?) Found|, found): .*",
            re.S,
        ),
        lambda m: _unknown_field(m) + (m["hint"] or ""),
    ),
    (re.compile(rf"(?P<m>Expected value of type {_TYPE}){_FOUND}", re.S), _keep("m")),
    (
        re.compile(
            r"(?P<m>(?:Int|Float|String|Boolean|ID) cannot represent [\w -]*value): .*", re.S
        ),
        _keep("m"),
    ),
    (re.compile(r"(?P<m>Enum '\w+' cannot represent non-string value): .*", re.S), _keep("m")),
    (
        re.compile(r"Value '.*' does not exist in '(?P<enum>\w+)' enum\.(?P<hint>.*)", re.S),
        lambda m: f"Value does not exist in '{m['enum']}' enum." + _hint(m["hint"]),
    ),
)


def _hint(text: str) -> str:
    found = _SUGGESTION.search(text)
    return found.group(0) if found else ""


def _known_problem(problem: str) -> str | None:
    for pattern, rewrite in _PROBLEMS:
        match = pattern.fullmatch(problem)
        if match is not None:
            return rewrite(match)
    return None


def _syntax(message: str) -> str:
    match = _SYNTAX_VALUE.search(message)
    if match is None:
        return message
    kind = match["kind"]
    return message[: match.start()] + (kind or "").rstrip() + "."


def without_values(message: str) -> str:
    """``message`` with any input value it quotes left out."""
    variable = _VARIABLE.fullmatch(message)
    if variable is not None:
        problem = _known_problem(variable["problem"])
        return f"{variable['head']}: {problem or 'the value does not fit its type.'}"
    if message.startswith("Syntax Error:"):
        return _syntax(message)
    return _known_problem(message) or message


def without_suggestions(message: str) -> str:
    """``message`` without "Did you mean ...?": in prod the schema is not for browsing."""
    return _SUGGESTION.sub("", message)
