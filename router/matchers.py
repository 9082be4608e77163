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
_PLAIN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Alertmanager's reserved characters: they end an unquoted literal.
_RESERVED = "{}!=~,\\\"'`"
_UNQUOTED = re.compile(r"[^\s{}!=~,\\\"'`]+")
_SPACE = re.compile(r"\s*")
_QUOTE_OR_BACKSLASH = re.compile(r"[\"\\]")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}
# RE2's POSIX classes inside a bracket expression: [[:alpha:]], [^[:space:]], [a[:digit:]].
# Python reads "[[:alpha:]" as a set of the characters "[:alph" followed by a literal "]", which
# would silently match something else. (A "[" escaped as "\[" does not open a bracket.)
_POSIX_CLASS = re.compile(r"(?<!\\)\[\^?[^\]]*\[:\^?[a-z]+:\]")


def _quote(text: str) -> str:
    """`text` as a double-quoted string that this module's parser reads back unchanged."""
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{escaped}"'


def _format_name(name: str) -> str:
    """A label name as written in a matcher: bare when Prometheus allows it, quoted otherwise."""
    return name if _PLAIN_NAME.fullmatch(name) else _quote(name)


def _compile(name: str, type_: MatchType, value: str) -> re.Pattern[str]:
    """Compile a regex matcher's value, or raise a MatcherError naming the matcher."""
    shown = f"{_format_name(name)}{type_.value}{_quote(value)}"

    def fail(reason: str) -> MatcherError:
        return MatcherError(f"invalid regex {_quote(value)} in matcher {shown}: {reason}", shown, 0)

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
        shown = f"{_format_name(self.name)}{self.type}{_quote(self.value)}"
        if not self.name:
            raise MatcherError(f"label name must not be empty in matcher {shown}", shown, 0)
        if not isinstance(self.type, MatchType):
            # Accept the operator's text ("=~") from callers that build matchers from data.
            try:
                object.__setattr__(self, "type", MatchType(self.type))
            except ValueError:
                raise MatcherError(
                    f"unknown operator {_quote(str(self.type))} in matcher {shown}: "
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
        because = f"label {name} is absent" if actual is None else f"{name} is {_quote(actual)}"
        return f"{self} {verdict} ({because})"

    def __str__(self) -> str:
        """Canonical text, e.g. ``team=~"db|storage"``; `parse_matcher` reads it back equal."""
        return f"{_format_name(self.name)}{self.type.value}{_quote(self.value)}"


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
    parsed = _Parser(text).parse()
    if len(parsed) == 1:
        return parsed[0][1]
    if not parsed:
        raise MatcherError("expected a matcher, found none", text, len(text))
    second = parsed[1][0]
    raise MatcherError(
        f"expected exactly one matcher, found {len(parsed)}"
        f" (the second starts at {_where(text, second)})",
        text,
        second,
    )


def parse_matchers(text: str) -> list[Matcher]:
    """Parse a comma-separated list of matchers, e.g. ``'{a="b", c=~"d"}'`` or ``'a=b,c!=d,'``.

    Braces are optional but must pair; one trailing comma is allowed; an empty or whitespace-only
    text and ``{}`` give ``[]`` (which `matches_all` treats as matching everything). Raises
    `MatcherError` with the position of the first problem.
    """
    return [matcher for _, matcher in _Parser(text).parse()]


def _where(text: str, position: int) -> str:
    """'column N', or 'line L, column N' when the text has several lines (YAML block scalars)."""
    column = position - text.rfind("\n", 0, position)
    if "\n" not in text:
        return f"column {column}"
    line = text.count("\n", 0, position) + 1
    return f"line {line}, column {column}"


def _show(char: str) -> str:
    """A character as quoted in an error message."""
    return "'\"'" if char == '"' else f'"{char}"'


class _Parser:
    """Hand-written parser over one input string; `parse` returns (offset, matcher) pairs.

    Every error message places the problem with `at` ("at column N"), right after the clause that
    says what was expected, and any hint on how to fix it comes last.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        # Whether the last value read was unquoted: then text right after it ("a=x y", "a=x\\y")
        # most likely belongs to the value, and the error says how to write that.
        self.unquoted_value = False

    def at(self, position: int | None = None) -> str:
        return f"at {_where(self.text, self.pos if position is None else position)}"

    def fail(self, message: str, position: int | None = None) -> MatcherError:
        return MatcherError(message, self.text, self.pos if position is None else position)

    def skip_space(self) -> None:
        match = _SPACE.match(self.text, self.pos)
        assert match is not None  # r"\s*" matches everywhere
        self.pos = match.end()

    def peek(self) -> str:
        """The next character, or "" at the end of the input."""
        return self.text[self.pos : self.pos + 1]

    def found(self) -> str:
        """What is at the current position, for 'found ...' in error messages."""
        char = self.peek()
        return _show(char) if char else "end of input"

    def parse(self) -> list[tuple[int, Matcher]]:
        self.skip_space()
        open_brace = self.pos if self.peek() == "{" else None
        if open_brace is not None:
            self.pos += 1
        parsed: list[tuple[int, Matcher]] = []
        while True:
            self.skip_space()
            if self.peek() in ("", "}"):
                break  # empty input, "{}", or the end after a trailing comma
            start = self.pos
            parsed.append((start, self.matcher()))
            self.skip_space()
            if self.peek() != ",":
                break
            self.pos += 1

        char = self.peek()
        if open_brace is not None:
            if not char:
                raise self.fail(f'missing "}}" {self.at()} to close the "{{" {self.at(open_brace)}')
            if char != "}":
                raise self.fail(
                    f'expected "," or "}}" after matcher {parsed[-1][1]} {self.at()}'
                    f"{self.value_hint()}"
                )
            self.pos += 1
        elif char == "}":
            raise self.fail(f'unexpected "}}" {self.at()}: there is no opening "{{"')
        elif char:
            raise self.fail(
                f'expected "," or end of input after matcher {parsed[-1][1]} {self.at()}'
                f"{self.value_hint()}"
            )

        self.skip_space()
        if self.peek():
            raise self.fail(f'unexpected {self.found()} {self.at()} after the closing "}}"')
        return parsed

    def value_hint(self) -> str:
        if not self.unquoted_value:
            return ""
        return "; double-quote a value that contains whitespace or any of { } ! = ~ , \\ \" ' `"

    def matcher(self) -> Matcher:
        name = self.label_name()
        self.skip_space()
        op = self.operator(name)
        self.skip_space()
        value_at = self.pos
        value = self.label_value(op)
        try:
            return Matcher(name, op, value)
        except MatcherError as exc:
            # Only the regex check can fail here; re-anchor the error in the caller's text.
            raise MatcherError(exc.message, self.text, value_at) from exc

    def label_name(self) -> str:
        start = self.pos
        char = self.peek()
        if char == '"':
            name = self.quoted()
            if not name:
                raise self.fail(f"label name {self.at(start)} must not be empty", start)
            return name
        if not char or char in _RESERVED:
            hint = "; use double quotes, not single quotes" if char in ("'", "`") else ""
            raise self.fail(f"expected a label name {self.at()}, found {self.found()}{hint}")
        plain = _PLAIN_NAME.match(self.text, self.pos)
        word = _UNQUOTED.match(self.text, self.pos)
        assert word is not None  # the next character is neither reserved nor whitespace
        if plain is not None and plain.end() == word.end():
            self.pos = plain.end()
            return plain.group()
        # The unquoted word is more than a Prometheus name. If an operator follows it, the user
        # meant it all as the name ("service.name=x"); otherwise a name was followed by something
        # that is not an operator ("severity>x"), so complain about the operator instead.
        self.pos = word.end()
        self.skip_space()
        if self.text.startswith(("=", "!=", "!~"), self.pos) or plain is None:
            raise self.fail(
                f"label name {word.group()} {self.at(start)} must be double-quoted "
                f"({_quote(word.group())}): unquoted names must match [a-zA-Z_][a-zA-Z0-9_]*",
                start,
            )
        self.pos = plain.end()
        return plain.group()

    def operator(self, name: str) -> MatchType:
        two = self.text[self.pos : self.pos + 2]
        for op in (MatchType.NOT_EQUAL, MatchType.REGEX, MatchType.NOT_REGEX):
            if two == op.value:
                self.pos += 2
                return op
        if two[:1] == "=":
            self.pos += 1
            return MatchType.EQUAL
        raise self.fail(
            f"expected one of =, !=, =~, !~ after label name {_quote(name)} {self.at()}"
        )

    def label_value(self, op: MatchType) -> str:
        char = self.peek()
        self.unquoted_value = char != '"'
        if char == '"':
            return self.quoted()
        if not char or char in _RESERVED:
            if char in ("", ",", "}"):
                hint = '; write "" to match an empty or absent label'
            elif char in ("'", "`"):
                hint = "; use double quotes, not single quotes"
            else:
                hint = "; double-quote a value that contains any of { } ! = ~ , \\ \" ' `"
            raise self.fail(
                f'expected a label value after "{op.value}" {self.at()}, found {self.found()}{hint}'
            )
        word = _UNQUOTED.match(self.text, self.pos)
        assert word is not None  # the next character is neither reserved nor whitespace
        self.pos = word.end()
        return word.group()

    def quoted(self) -> str:
        """Read the double-quoted string at the current position; return its unescaped content."""
        text = self.text
        start = self.pos
        pos = start + 1
        parts: list[str] = []
        while True:
            special = _QUOTE_OR_BACKSLASH.search(text, pos)
            # A backslash as the last character escapes nothing: the string never ends either.
            if special is None or (special.group() == "\\" and special.end() == len(text)):
                raise self.fail(f"unterminated quoted string starting {self.at(start)}", start)
            at = special.start()
            parts.append(text[pos:at])
            if special.group() == '"':
                self.pos = at + 1
                return "".join(parts)
            escaped = text[at + 1]
            if escaped not in _ESCAPES:
                if escaped.isprintable():
                    what, fix = f"\\{escaped}", f"write \\\\{escaped} for a backslash and {escaped}"
                else:
                    what, fix = f"(backslash and {escaped!r})", "write \\\\ for a backslash"
                raise self.fail(
                    f"unsupported escape {what} {self.at(at)} in a quoted string: only "
                    f'\\", \\\\ and \\n are allowed; {fix}',
                    at,
                )
            parts.append(_ESCAPES[escaped])
            pos = at + 2
