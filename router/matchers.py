"""Alertmanager-compatible label matchers: parse them from rule text and test alerts against them.

A matcher is ``name op value``, where ``op`` is one of ``=``, ``!=``, ``=~`` (regex matches) and
``!~`` (regex does not match), exactly as in an Alertmanager ``matchers:`` list::

    severity="critical"          team=~"db|storage"          env != staging
    "service.name"="api"         {alertname="Watchdog", severity=~"warning|critical",}

Syntax (the common ground of Alertmanager's classic and UTF-8 parsers, so a rule copied from an
``alertmanager.yml`` means the same here):

* A label name is either unquoted, of the Prometheus form ``[a-zA-Z_][a-zA-Z0-9_]*``, or a
  double-quoted string of any UTF-8 (Alertmanager >= 0.27), e.g. ``"service.name"``.
* A value is either a double-quoted string or an unquoted run of characters other than whitespace
  and ``{ } ! = ~ , \\ " ' `` `` (Alertmanager's reserved characters), e.g. ``env=prod``.
* Inside double quotes the only escapes are ``\\"``, ``\\\\`` and ``\\n``. Other escapes such as
  ``\\d`` are rejected: Alertmanager's two parsers disagree about them (the classic one keeps the
  backslash, the UTF-8 one follows Go and fails or decodes), so accepting either reading would
  silently differ from one of them. Write ``"\\\\d+"`` for the regex ``\\d+``.
* Whitespace around tokens is ignored. A list may be wrapped in ``{ }`` (both or neither), and may
  end with one trailing comma. ``""``, ``{}`` and whitespace parse to no matchers at all.

Semantics (Alertmanager's):

* A label the alert does not have is treated as the empty string, so ``foo=""`` matches when ``foo``
  is absent, ``foo!=""`` requires ``foo`` to be present and non-empty, and ``team!="db"`` *matches*
  alerts that have no ``team`` label.
* Regexes are fully anchored: ``severity=~"crit"`` does not match ``critical``.
* Several matchers combine with AND (`matches_all`).

Regex dialect: Alertmanager uses Go's RE2, this module uses Python's ``re``. The everyday subset
(classes, alternation, repetition, ``(?i)`` case-insensitivity, ``(?P<name>...)``) behaves the same.
Python accepts some things RE2 rejects (lookaround, backreferences); RE2 accepts some things Python
rejects (flags such as ``(?i)`` in the middle of a pattern, ``\\z``) and those fail here with a
`MatcherError`. RE2's POSIX classes (``[[:alpha:]]``) would silently mean something else in
Python, so they are rejected too. One difference remains silent: Python's ``\\d``, ``\\w`` and
``\\s`` also match non-ASCII digits, letters and spaces, RE2's only ASCII ones.

This module imports only the standard library so that it can be used and tested on its own.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "MatchType",
    "Matcher",
    "MatcherError",
    "matches_all",
    "parse_matcher",
    "parse_matchers",
]


class MatchType(StrEnum):
    """The four operators of an Alertmanager matcher; the value is the operator's text."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


class MatcherError(ValueError):
    """A matcher that cannot be parsed or built.

    `message` (also ``str(error)``) says what is wrong and, for syntax errors, where, as a 1-based
    column (and line, when the text spans several lines). `text` is the input that was being
    parsed and `position` the 0-based offset into it of the offending character (``len(text)``
    for an unexpected end of input), so a caller can point at it; `line` and `column` give the
    same place 1-based.
    """

    def __init__(self, message: str, text: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.text = text
        self.position = position

    @property
    def line(self) -> int:
        """1-based line of `position` in `text`."""
        return self.text.count("\n", 0, self.position) + 1

    @property
    def column(self) -> int:
        """1-based column of `position` within its line."""
        return self.position - (self.text.rfind("\n", 0, self.position) + 1) + 1

    def __reduce__(self) -> tuple[type[MatcherError], tuple[str, str, int]]:
        # The default reduce would call __init__ with `args` (the message alone) and fail, which
        # breaks anything that pickles exceptions across processes (worker queues).
        return (type(self), (self.message, self.text, self.position))


# For the hot path in Matcher.matches, where attribute access on the enum class is slow.
_EQUAL, _NOT_EQUAL, _REGEX = MatchType.EQUAL, MatchType.NOT_EQUAL, MatchType.REGEX

# Label names that need no quotes: the Prometheus (and classic Alertmanager) form.
PLAIN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# RE2's POSIX classes inside a bracket expression: [[:alpha:]], [^[:space:]], [a[:digit:]].
# Python reads "[[:alpha:]" as a set of the characters "[:alph" followed by a literal "]", which
# would silently match something else. (A "[" escaped as "\[" does not open a bracket.)
_POSIX_CLASS = re.compile(r"(?<!\\)\[\^?[^\]]*\[:\^?[a-z]+:\]")


def quote(text: str) -> str:
    """`text` as a double-quoted string that this module's parser reads back unchanged."""
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{escaped}"'


def _format_name(name: str) -> str:
    """A label name as written in a matcher: bare when Prometheus allows it, quoted otherwise."""
    return name if PLAIN_NAME.fullmatch(name) else quote(name)


def _compile(name: str, type_: MatchType, value: str) -> re.Pattern[str]:
    """Compile a regex matcher's value, or raise a MatcherError naming the matcher."""
    shown = f"{_format_name(name)}{type_.value}{quote(value)}"

    def fail(reason: str) -> MatcherError:
        return MatcherError(f"invalid regex {quote(value)} in matcher {shown}: {reason}", shown, 0)

    if _POSIX_CLASS.search(value):
        raise fail("POSIX classes such as [[:alpha:]] are not supported, write e.g. [a-zA-Z]")
    try:
        # Python only warns about patterns it reads dubiously, e.g. sets like "[[a]" or "[a--b]"
        # whose meaning changes in later versions (FutureWarning); in a routing rule that is as
        # bad as an error, so make it one. This touches the process-wide warning filters, which
        # is acceptable because matchers are parsed when rules load, not per request. `re` does
        # not cache a pattern whose compilation raised, so the check holds on every parse.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            # No "^(?:...)$" wrapper: fullmatch anchors instead. Wrapping would break a leading
            # "(?i)" (Python 3.11 wants global flags at the very start; "(?i)" works in both RE2
            # and Python this way) and Python's "$" also matches before a trailing newline.
            return re.compile(value)
    except re.error as exc:
        raise fail(exc.msg) from exc
    except FutureWarning as exc:
        # Python's text starts with a capital: "Possible nested set at position 1".
        reason = f"{str(exc)[:1].lower()}{str(exc)[1:]}"
        raise fail(f"{reason}; escape a literal [ or - inside [...] as \\[ or \\-") from exc
    except (Warning, OverflowError, RecursionError) as exc:
        # Other warnings, "the repetition number is too large", absurdly deep nesting.
        raise fail(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher, e.g. ``team=~"db|storage"``.

    Build one with `parse_matcher`, or directly: ``Matcher("team", MatchType.REGEX, "db|.*")``.
    Construction validates: an empty label name, an unknown operator or an invalid regex raises
    `MatcherError`. A regex is compiled once here, never during matching. Matchers are immutable,
    hashable, and compare equal when name, operator and value are equal.
    """

    name: str
    type: MatchType
    value: str
    # The compiled pattern of a regex matcher, None otherwise. Derived from the fields above, so
    # it takes no part in equality, hashing or repr.
    _regex: re.Pattern[str] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        shown = f"{_format_name(self.name)}{self.type}{quote(self.value)}"
        if not self.name:
            raise MatcherError(f"label name must not be empty in matcher {shown}", shown, 0)
        if not isinstance(self.type, MatchType):
            # Accept the operator's text ("=~") from callers that build matchers from data.
            try:
                object.__setattr__(self, "type", MatchType(self.type))
            except ValueError:
                raise MatcherError(
                    f"unknown operator {quote(str(self.type))} in matcher {shown}: "
                    "expected one of =, !=, =~, !~",
                    shown,
                    0,
                ) from None
        if self.type is MatchType.REGEX or self.type is MatchType.NOT_REGEX:
            object.__setattr__(self, "_regex", _compile(self.name, self.type, self.value))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with these labels satisfies the matcher (absent labels count as "")."""
        # Hot path: one dict lookup, then one comparison or one regex call. Dispatch compares
        # against module-level aliases: `MatchType.EQUAL` costs ~80 ns per lookup on 3.11.
        actual = labels.get(self.name, "")
        kind = self.type
        if kind is _EQUAL:
            return actual == self.value
        if kind is _NOT_EQUAL:
            return actual != self.value
        regex = self._regex
        assert regex is not None  # __post_init__ sets it for both regex kinds
        if kind is _REGEX:
            return regex.fullmatch(actual) is not None
        return regex.fullmatch(actual) is None

    def explain(self, labels: Mapping[str, str]) -> str:
        """One line saying whether the labels match and what the label's value was.

        E.g. ``severity="critical" matched (severity is "critical")`` or
        ``team="db" did not match (label team is absent)``. Meant for logs and rule debugging, not
        for parsing.
        """
        verdict = "matched" if self.matches(labels) else "did not match"
        name = _format_name(self.name)
        actual = labels.get(self.name)
        because = f"label {name} is absent" if actual is None else f"{name} is {quote(actual)}"
        return f"{self} {verdict} ({because})"

    def __str__(self) -> str:
        """Canonical text, e.g. ``team=~"db|storage"``; `parse_matcher` reads it back equal."""
        return f"{_format_name(self.name)}{self.type.value}{quote(self.value)}"


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether every matcher matches the labels (AND); true for an empty sequence."""
    # A plain loop, not all(<generator>): the generator costs ~200 ns per call on this hot path.
    for matcher in matchers:  # noqa: SIM110
        if not matcher.matches(labels):
            return False
    return True


def parse_matcher(text: str) -> Matcher:
    """Parse exactly one matcher, e.g. ``'severity="critical"'``.

    Accepts everything `parse_matchers` does (braces, a trailing comma) as long as the text holds
    exactly one matcher. Raises `MatcherError` otherwise.
    """
    from router.matcher_parser import parse_one  # the parser needs Matcher: imported late

    return parse_one(text)


def parse_matchers(text: str) -> list[Matcher]:
    """Parse a comma-separated list of matchers, e.g. ``'{a="b", c=~"d"}'`` or ``'a=b,c!=d,'``.

    Braces are optional but must pair; one trailing comma is allowed; an empty or whitespace-only
    text and ``{}`` give ``[]`` (which `matches_all` treats as matching everything). Raises
    `MatcherError` with the position of the first problem.
    """
    from router.matcher_parser import parse_list

    return parse_list(text)
