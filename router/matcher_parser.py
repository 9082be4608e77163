"""The parser behind `router.matchers.parse_matcher(s)`: Alertmanager's matcher syntax, with
error messages that say what was expected, where, and how to fix it. Call it through
`router.matchers`."""

from __future__ import annotations

import re

from router.matchers import (
    PLAIN_NAME,
    Matcher,
    MatcherError,
    MatchType,
    quote,
)

# Alertmanager's reserved characters: they end an unquoted literal.
_RESERVED = "{}!=~,\\\"'`"
_UNQUOTED = re.compile(r"[^\s{}!=~,\\\"'`]+")
_SPACE = re.compile(r"\s*")
_QUOTE_OR_BACKSLASH = re.compile(r"[\"\\]")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}


def parse_one(text: str) -> Matcher:
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


def parse_list(text: str) -> list[Matcher]:
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
        plain = PLAIN_NAME.match(self.text, self.pos)
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
                f"({quote(word.group())}): unquoted names must match [a-zA-Z_][a-zA-Z0-9_]*",
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
        raise self.fail(f"expected one of =, !=, =~, !~ after label name {quote(name)} {self.at()}")

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
