"""Tests for router.matchers: Alertmanager matcher syntax, semantics, explanations and errors."""

from __future__ import annotations

import dataclasses
import pickle
import re

import pytest

from router.matchers import (
    Matcher,
    MatcherError,
    MatchType,
    matches_all,
    parse_matcher,
    parse_matchers,
)

EQ, NE, RE, NRE = MatchType.EQUAL, MatchType.NOT_EQUAL, MatchType.REGEX, MatchType.NOT_REGEX

# --------------------------------------------------------------------------------------------
# Parsing one matcher
# --------------------------------------------------------------------------------------------

PARSE_ONE = [
    # The four operators, with the canonical quoted value.
    pytest.param('severity="critical"', ("severity", EQ, "critical"), id="equal"),
    pytest.param('severity!="info"', ("severity", NE, "info"), id="not-equal"),
    pytest.param('team=~"db|storage"', ("team", RE, "db|storage"), id="regex"),
    pytest.param('team!~"web.*"', ("team", NRE, "web.*"), id="not-regex"),
    # "=~" is one operator, not "=" followed by a value starting with "~".
    pytest.param("a=~b", ("a", RE, "b"), id="regex-operator-is-greedy"),
    # Unquoted values of non-reserved characters, as Alertmanager's UTF-8 parser accepts.
    pytest.param("env=prod", ("env", EQ, "prod"), id="unquoted-value"),
    pytest.param("team=~db|storage", ("team", RE, "db|storage"), id="unquoted-regex-with-pipe"),
    pytest.param(
        "instance=~[a-z]+-[0-9]+:9100",
        ("instance", RE, "[a-z]+-[0-9]+:9100"),
        id="unquoted-regex-with-brackets",
    ),
    pytest.param("name=Προμηθεύς", ("name", EQ, "Προμηθεύς"), id="unquoted-utf8-value"),
    # An empty value needs quotes; it is a legal value.
    pytest.param('a=""', ("a", EQ, ""), id="empty-quoted-value"),
    pytest.param('a=~""', ("a", RE, ""), id="empty-regex"),
    # The three escapes inside double quotes.
    pytest.param(r'msg="say \"hi\""', ("msg", EQ, 'say "hi"'), id="escaped-quote"),
    pytest.param(r'path="C:\\temp"', ("path", EQ, "C:\\temp"), id="escaped-backslash"),
    pytest.param(r'text="a\nb"', ("text", EQ, "a\nb"), id="escaped-newline"),
    pytest.param(r'a=~"\\d+"', ("a", RE, r"\d+"), id="regex-backslash-is-doubled"),
    # Reserved characters and whitespace are plain text inside double quotes.
    pytest.param('a="{}!=~,\'` x"', ("a", EQ, "{}!=~,'` x"), id="reserved-chars-quoted"),
    pytest.param('a=~"=~"', ("a", RE, "=~"), id="operator-text-in-value"),
    # Any character other than " and \ may appear raw inside quotes, even a tab or newline.
    pytest.param('a="x\ty\nz"', ("a", EQ, "x\ty\nz"), id="raw-control-chars-quoted"),
    # Quoted label names carry any UTF-8 (Alertmanager >= 0.27 UTF-8 mode).
    pytest.param('"service.name"="api"', ("service.name", EQ, "api"), id="quoted-utf8-name"),
    pytest.param('"Προμηθεύς"="x"', ("Προμηθεύς", EQ, "x"), id="quoted-greek-name"),
    pytest.param(r'"a\"b"="c"', ('a"b', EQ, "c"), id="quoted-name-with-escape"),
    # Quoting a name that would not need it changes nothing.
    pytest.param('"severity"="x"', ("severity", EQ, "x"), id="quoted-plain-name"),
    pytest.param("_a1=x", ("_a1", EQ, "x"), id="underscore-and-digit-name"),
    # Whitespace around every token is ignored, including tabs and newlines.
    pytest.param('  severity  =~  "crit.*"  ', ("severity", RE, "crit.*"), id="spaces"),
    pytest.param('\tseverity\n!=\n"x"\n', ("severity", NE, "x"), id="tabs-newlines"),
    # parse_matcher also accepts the braces and trailing comma of the list form.
    pytest.param('{severity="critical"}', ("severity", EQ, "critical"), id="single-in-braces"),
    pytest.param('severity="critical",', ("severity", EQ, "critical"), id="single-trailing-comma"),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_ONE)
def test_parse_matcher(text: str, expected: tuple[str, MatchType, str]) -> None:
    assert parse_matcher(text) == Matcher(*expected)


# --------------------------------------------------------------------------------------------
# Parsing lists of matchers
# --------------------------------------------------------------------------------------------

AB = [Matcher("a", EQ, "b"), Matcher("c", RE, "d")]

PARSE_MANY = [
    # Braces are optional, both forms give the same list in order.
    pytest.param('{a="b", c=~"d"}', AB, id="braces"),
    pytest.param('a="b",c=~"d"', AB, id="no-braces"),
    # One trailing comma is allowed, with or without braces.
    pytest.param('{a="b", c=~"d",}', AB, id="braces-trailing-comma"),
    pytest.param('a="b", c=~"d",', AB, id="no-braces-trailing-comma"),
    # Whitespace anywhere outside quotes, as in a YAML block scalar.
    pytest.param('{\n  a = "b",\n  c =~ "d",\n}\n', AB, id="multi-line-block"),
    pytest.param(" { a=b , c=~d } ", AB, id="unquoted-values-and-spaces"),
    # A comma inside quotes does not separate matchers.
    pytest.param('a="x,y"', [Matcher("a", EQ, "x,y")], id="comma-inside-quotes"),
    # Nothing at all is an empty list, which matches every alert.
    pytest.param("{}", [], id="empty-braces"),
    pytest.param("{ }", [], id="empty-braces-space"),
    pytest.param("", [], id="empty-text"),
    pytest.param("  \n ", [], id="whitespace-only"),
    # The same matcher twice is kept twice; duplicates are the caller's business.
    pytest.param('a="b",a="b"', [AB[0], AB[0]], id="duplicates-kept"),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_MANY)
def test_parse_matchers(text: str, expected: list[Matcher]) -> None:
    assert parse_matchers(text) == expected


# --------------------------------------------------------------------------------------------
# Canonical text and round trip
# --------------------------------------------------------------------------------------------

ROUND_TRIP = [
    # Values are always double-quoted; plain names are bare.
    pytest.param(Matcher("severity", EQ, "critical"), 'severity="critical"', id="plain"),
    pytest.param(Matcher("team", NRE, "db|storage"), 'team!~"db|storage"', id="not-regex"),
    pytest.param(Matcher("a", NE, ""), 'a!=""', id="empty-value"),
    # The three escapes are written back.
    pytest.param(Matcher("a", EQ, 'say "hi"'), r'a="say \"hi\""', id="quote-escaped"),
    pytest.param(Matcher("a", RE, r"\d+"), r'a=~"\\d+"', id="backslash-escaped"),
    pytest.param(Matcher("a", EQ, "x\ny"), r'a="x\ny"', id="newline-escaped"),
    # Other control characters stay raw inside the quotes and still parse back.
    pytest.param(Matcher("a", EQ, "x\ty\r"), 'a="x\ty\r"', id="tab-cr-raw"),
    # Names outside [a-zA-Z_][a-zA-Z0-9_]* are quoted, with the same escapes.
    pytest.param(Matcher("service.name", EQ, "api"), '"service.name"="api"', id="dotted-name"),
    pytest.param(Matcher("1st", EQ, "x"), '"1st"="x"', id="digit-first-name"),
    pytest.param(Matcher('we"ird\\', EQ, "x"), r'"we\"ird\\"="x"', id="name-escaped"),
    pytest.param(Matcher("Προμηθεύς", EQ, "🙂"), '"Προμηθεύς"="🙂"', id="utf8"),
    # Reserved characters in values are safe inside the quotes.
    pytest.param(Matcher("a", EQ, "{x}, !=~ 'y'"), "a=\"{x}, !=~ 'y'\"", id="reserved"),
]


@pytest.mark.parametrize(("matcher", "text"), ROUND_TRIP)
def test_str_is_canonical_and_parses_back(matcher: Matcher, text: str) -> None:
    assert str(matcher) == text
    assert parse_matcher(str(matcher)) == matcher


@pytest.mark.parametrize(("text", "expected"), PARSE_ONE)
def test_every_parsed_matcher_round_trips(text: str, expected: tuple[str, MatchType, str]) -> None:
    # Whatever the input spelling, the canonical form reads back to an equal matcher.
    matcher = parse_matcher(text)
    assert parse_matcher(str(matcher)) == matcher


# --------------------------------------------------------------------------------------------
# Matching semantics
# --------------------------------------------------------------------------------------------

LABELS = {"alertname": "HighCPU", "severity": "critical", "team": "web", "empty": ""}

MATCHING = [
    # Equality compares the whole value, case-sensitively.
    pytest.param('severity="critical"', LABELS, True, id="eq-same"),
    pytest.param('severity="warning"', LABELS, False, id="eq-different"),
    pytest.param('severity="Critical"', LABELS, False, id="eq-case-sensitive"),
    pytest.param('severity="crit"', LABELS, False, id="eq-no-prefix"),
    # A missing label equals the empty string (Alertmanager reads labels[name] as "").
    pytest.param('team="db"', {}, False, id="eq-absent"),
    pytest.param('team=""', {}, True, id="eq-empty-matches-absent"),
    pytest.param('empty=""', LABELS, True, id="eq-empty-matches-empty"),
    pytest.param('team=""', LABELS, False, id="eq-empty-rejects-present"),
    # != is true for an absent label unless the value is "": foo!="" requires presence.
    pytest.param('team!="db"', LABELS, True, id="ne-different"),
    pytest.param('team!="web"', LABELS, False, id="ne-same"),
    pytest.param('team!="db"', {}, True, id="ne-matches-absent"),
    pytest.param('team!=""', {}, False, id="ne-empty-requires-presence"),
    pytest.param('team!=""', LABELS, True, id="ne-empty-present"),
    pytest.param('empty!=""', LABELS, False, id="ne-empty-rejects-empty-value"),
    # Regexes are fully anchored: a match must cover the whole value.
    pytest.param('severity=~"crit"', LABELS, False, id="re-anchored-prefix"),
    pytest.param('severity=~"itical"', LABELS, False, id="re-anchored-suffix"),
    pytest.param('severity=~"crit.*"', LABELS, True, id="re-explicit-wildcard"),
    pytest.param('severity=~"critical|warning"', LABELS, True, id="re-alternation"),
    # Anchoring wraps the whole alternation, not just its first and last branch.
    pytest.param('severity=~"warn|crit"', LABELS, False, id="re-alternation-anchored"),
    pytest.param('severity=~"crit|critical"', LABELS, True, id="re-alternation-backtracks"),
    pytest.param('severity!~"crit"', LABELS, True, id="nre-anchored"),
    pytest.param('severity!~"crit.*"', LABELS, False, id="nre-matching"),
    # A regex sees an absent label as "": .* matches it, .+ does not.
    pytest.param('team=~".*"', {}, True, id="re-dotstar-matches-absent"),
    pytest.param('team=~".+"', {}, False, id="re-dotplus-rejects-absent"),
    pytest.param('team!~".+"', {}, True, id="nre-dotplus-matches-absent"),
    pytest.param('team=~""', {}, True, id="re-empty-matches-absent"),
    # (?i) at the start works the same in RE2 and Python.
    pytest.param('severity=~"(?i)CRITICAL"', LABELS, True, id="re-case-insensitive-flag"),
    pytest.param('severity=~"(?i:CRIT)ical"', LABELS, True, id="re-scoped-flag"),
    # Python's "$" matches before a trailing newline; fullmatch does not, like RE2.
    pytest.param('a=~"x"', {"a": "x\n"}, False, id="re-no-trailing-newline"),
    # "." does not match a newline in either dialect.
    pytest.param('a=~".*"', {"a": "x\ny"}, False, id="re-dot-no-newline"),
    pytest.param('a=~"(?s).*"', {"a": "x\ny"}, True, id="re-dotall-flag"),
    # Matching is on the exact label name, including UTF-8 names.
    pytest.param('"service.name"="api"', {"service.name": "api"}, True, id="utf8-name"),
    pytest.param('"service.name"="api"', {"service_name": "api"}, False, id="utf8-name-exact"),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCHING)
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


MATCHES_ALL = [
    # No matchers match everything, like an Alertmanager route without matchers.
    pytest.param("", {}, True, id="empty-matches-all"),
    # All matchers must match (AND).
    pytest.param('severity="critical", team=~"web|api"', LABELS, True, id="all-match"),
    pytest.param('severity="critical", team="db"', LABELS, False, id="one-fails"),
    pytest.param('team="db", severity="critical"', LABELS, False, id="first-fails"),
    # Two matchers on the same label both apply.
    pytest.param('team=~"w.*", team!="web"', LABELS, False, id="same-label-twice"),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCHES_ALL)
def test_matches_all(text: str, labels: dict[str, str], expected: bool) -> None:
    assert matches_all(parse_matchers(text), labels) is expected


# --------------------------------------------------------------------------------------------
# explain()
# --------------------------------------------------------------------------------------------

EXPLAIN = [
    # Matched, showing the actual value.
    pytest.param(
        'severity="critical"',
        LABELS,
        'severity="critical" matched (severity is "critical")',
        id="matched",
    ),
    # Not matched, in canonical form whatever the input spelling.
    pytest.param(
        "team =~ db|storage",
        LABELS,
        'team=~"db|storage" did not match (team is "web")',
        id="did-not-match",
    ),
    # An absent label is called absent, whether or not the matcher then matches.
    pytest.param('team="db"', {}, 'team="db" did not match (label team is absent)', id="absent"),
    pytest.param('team!="db"', {}, 'team!="db" matched (label team is absent)', id="absent-ne"),
    # An empty value is shown as present and empty, not absent.
    pytest.param('empty=""', LABELS, 'empty="" matched (empty is "")', id="present-empty"),
    # Values are escaped the same way as in matchers; quoted names stay quoted.
    pytest.param(
        '"service.name"!~"api.*"',
        {"service.name": 'a "b"\nc'},
        r'"service.name"!~"api.*" matched ("service.name" is "a \"b\"\nc")',
        id="escaped-and-quoted-name",
    ),
]


@pytest.mark.parametrize(("text", "labels", "expected"), EXPLAIN)
def test_explain(text: str, labels: dict[str, str], expected: str) -> None:
    assert parse_matcher(text).explain(labels) == expected


# --------------------------------------------------------------------------------------------
# Errors: every message, and where it points
# --------------------------------------------------------------------------------------------

ERRORS = [
    # Operator missing or wrong; the column is 1-based and points just past the name.
    pytest.param(
        "severity",
        'expected one of =, !=, =~, !~ after label name "severity" at column 9',
        8,
        id="no-operator-end",
    ),
    pytest.param(
        'severity>"x"',
        'expected one of =, !=, =~, !~ after label name "severity" at column 9',
        8,
        id="unknown-operator",
    ),
    pytest.param(
        'severity > "x"',
        'expected one of =, !=, =~, !~ after label name "severity" at column 10',
        9,
        id="unknown-operator-spaced",
    ),
    # "!" alone is not an operator.
    pytest.param(
        "a!b", 'expected one of =, !=, =~, !~ after label name "a" at column 2', 1, id="bang"
    ),
    # Unterminated quotes point at the opening quote.
    pytest.param(
        'severity="critical',
        "unterminated quoted string starting at column 10",
        9,
        id="unterminated-value",
    ),
    pytest.param(
        '"service.name="api"',
        'expected one of =, !=, =~, !~ after label name "service.name=" at column 16',
        15,
        id="unterminated-name-swallows-operator",
    ),
    # A final backslash escapes nothing, so the string is still open.
    pytest.param(
        'a="x\\', "unterminated quoted string starting at column 3", 2, id="trailing-backslash"
    ),
    # Only \", \\ and \n are escapes; the classic and UTF-8 parsers disagree about the rest.
    pytest.param(
        r'a=~"\d+"',
        r"unsupported escape \d at column 5 in a quoted string: only \", \\ and \n are allowed;"
        r" write \\d for a backslash and d",
        4,
        id="escape-d",
    ),
    pytest.param(
        r'a="x\ty"',
        r"unsupported escape \t at column 5 in a quoted string: only \", \\ and \n are allowed;"
        r" write \\t for a backslash and t",
        4,
        id="escape-t",
    ),
    pytest.param(
        'a="x\\\ny"',
        "unsupported escape (backslash and '\\n') at line 1, column 5 in a quoted string:"
        r" only \", \\ and \n are allowed; write \\ for a backslash",
        4,
        id="escape-line-break",
    ),
    # Label names: unquoted ones must be Prometheus names, quoted ones must not be empty.
    pytest.param(
        "service.name=api",
        'label name service.name at column 1 must be double-quoted ("service.name"):'
        " unquoted names must match [a-zA-Z_][a-zA-Z0-9_]*",
        0,
        id="dotted-name-unquoted",
    ),
    pytest.param(
        '1st =~ "x"',
        'label name 1st at column 1 must be double-quoted ("1st"):'
        " unquoted names must match [a-zA-Z_][a-zA-Z0-9_]*",
        0,
        id="digit-first-name",
    ),
    pytest.param('""="x"', "label name at column 1 must not be empty", 0, id="empty-name"),
    pytest.param('="x"', 'expected a label name at column 1, found "="', 0, id="missing-name"),
    pytest.param(
        "'a'=\"x\"",
        'expected a label name at column 1, found "\'"; use double quotes, not single quotes',
        0,
        id="single-quoted-name",
    ),
    # Values: required (write "" for empty), no single quotes, reserved characters need quotes.
    pytest.param(
        "a=",
        'expected a label value after "=" at column 3, found end of input;'
        ' write "" to match an empty or absent label',
        2,
        id="missing-value-end",
    ),
    pytest.param(
        "a=,b=c",
        'expected a label value after "=" at column 3, found ",";'
        ' write "" to match an empty or absent label',
        2,
        id="missing-value-comma",
    ),
    pytest.param(
        "{a=~}",
        'expected a label value after "=~" at column 5, found "}";'
        ' write "" to match an empty or absent label',
        4,
        id="missing-value-brace",
    ),
    pytest.param(
        "a='x'",
        'expected a label value after "=" at column 3, found "\'";'
        " use double quotes, not single quotes",
        2,
        id="single-quoted-value",
    ),
    pytest.param(
        "a==b",
        'expected a label value after "=" at column 3, found "=";'
        " double-quote a value that contains any of { } ! = ~ , \\ \" ' `",
        2,
        id="double-equals",
    ),
    # Text after an unquoted value most likely belongs to it: say how to quote.
    pytest.param(
        "a=x y",
        'expected "," or end of input after matcher a="x" at column 5;'
        " double-quote a value that contains whitespace or any of { } ! = ~ , \\ \" ' `",
        4,
        id="unquoted-value-with-space",
    ),
    pytest.param(
        r"a=x\d",
        'expected "," or end of input after matcher a="x" at column 4;'
        " double-quote a value that contains whitespace or any of { } ! = ~ , \\ \" ' `",
        3,
        id="unquoted-value-with-backslash",
    ),
    # Separators: a missing comma, or an empty slot between commas.
    pytest.param(
        'a="b" c="d"',
        'expected "," or end of input after matcher a="b" at column 7',
        6,
        id="missing-comma",
    ),
    pytest.param(
        '{a="b" c="d"}',
        'expected "," or "}" after matcher a="b" at column 8',
        7,
        id="missing-comma-braces",
    ),
    pytest.param(
        'a="b",,c="d"', 'expected a label name at column 7, found ","', 6, id="double-comma"
    ),
    pytest.param(",", 'expected a label name at column 1, found ","', 0, id="comma-only"),
    pytest.param("{,}", 'expected a label name at column 2, found ","', 1, id="comma-in-braces"),
    # Braces must pair, and nothing may follow the closing one.
    pytest.param(
        '{a="b"',
        'missing "}" at column 7 to close the "{" at column 1',
        6,
        id="unclosed-brace",
    ),
    pytest.param(
        'a="b"}',
        'unexpected "}" at column 6: there is no opening "{"',
        5,
        id="unopened-brace",
    ),
    pytest.param(
        '{{a="b"}}', 'expected a label name at column 2, found "{"', 1, id="double-open-brace"
    ),
    pytest.param(
        '{a="b"}}',
        'unexpected "}" at column 8 after the closing "}"',
        7,
        id="double-close-brace",
    ),
    pytest.param(
        '{a="b"} x',
        'unexpected "x" at column 9 after the closing "}"',
        8,
        id="text-after-brace",
    ),
    # In a multi-line text the place is given as line and column.
    pytest.param(
        '{\n  a="b"\n  c="d"\n}',
        'expected "," or "}" after matcher a="b" at line 3, column 3',
        12,
        id="multi-line-position",
    ),
    # Invalid regexes name the regex and the matcher; the position is the value's start.
    pytest.param(
        'team=~"("',
        'invalid regex "(" in matcher team=~"(": missing ), unterminated subpattern',
        6,
        id="regex-unterminated-group",
    ),
    pytest.param(
        'team=~"(["',
        'invalid regex "([" in matcher team=~"([": unterminated character set',
        6,
        id="regex-unterminated-set",
    ),
    pytest.param(
        "a!~*", 'invalid regex "*" in matcher a!~"*": nothing to repeat', 3, id="regex-repeat"
    ),
    # Go's "^(?:" + re + ")$" would let "a)|(b" escape the anchors; here it is simply invalid.
    pytest.param(
        'a=~"a)|(b"',
        'invalid regex "a)|(b" in matcher a=~"a)|(b": unbalanced parenthesis',
        3,
        id="regex-anchor-escape",
    ),
    # RE2 allows flags mid-pattern; Python 3.11 only at the start.
    pytest.param(
        'a=~"x(?i)y"',
        'invalid regex "x(?i)y" in matcher a=~"x(?i)y":'
        " global flags not at the start of the expression",
        3,
        id="regex-mid-pattern-flag",
    ),
    pytest.param(
        'a=~"x{99999999999}"',
        'invalid regex "x{99999999999}" in matcher a=~"x{99999999999}":'
        " the repetition number is too large",
        3,
        id="regex-huge-repeat",
    ),
    # RE2's POSIX classes would silently mean something else in Python.
    pytest.param(
        'a=~"[[:alpha:]]+"',
        'invalid regex "[[:alpha:]]+" in matcher a=~"[[:alpha:]]+":'
        " POSIX classes such as [[:alpha:]] are not supported, write e.g. [a-zA-Z]",
        3,
        id="regex-posix-class",
    ),
    pytest.param(
        'a=~"[x[:digit:]]"',
        'invalid regex "[x[:digit:]]" in matcher a=~"[x[:digit:]]":'
        " POSIX classes such as [[:alpha:]] are not supported, write e.g. [a-zA-Z]",
        3,
        id="regex-posix-class-inside-set",
    ),
    # Sets Python only warns about are errors, so a rule never changes meaning on upgrade.
    pytest.param(
        'a=~"[[x]"',
        'invalid regex "[[x]" in matcher a=~"[[x]": possible nested set at position 1;'
        " escape a literal [ or - inside [...] as \\[ or \\-",
        3,
        id="regex-nested-set-warning",
    ),
    pytest.param(
        'a=~"[a--b]"',
        'invalid regex "[a--b]" in matcher a=~"[a--b]": possible set difference at position 2;'
        " escape a literal [ or - inside [...] as \\[ or \\-",
        3,
        id="regex-set-difference-warning",
    ),
]


@pytest.mark.parametrize(("text", "message", "position"), ERRORS)
def test_parse_errors(text: str, message: str, position: int) -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matchers(text)
    assert caught.value.message == message
    assert str(caught.value) == message
    assert caught.value.text == text
    assert caught.value.position == position


PARSE_ONE_ERRORS = [
    # parse_matcher wants exactly one matcher.
    pytest.param("", "expected a matcher, found none", 0, id="empty"),
    pytest.param("{}", "expected a matcher, found none", 2, id="empty-braces"),
    pytest.param(
        'a="b", c="d"',
        "expected exactly one matcher, found 2 (the second starts at column 8)",
        7,
        id="two",
    ),
    # Syntax errors are the same as for parse_matchers.
    pytest.param(
        "severity",
        'expected one of =, !=, =~, !~ after label name "severity" at column 9',
        8,
        id="syntax",
    ),
]


@pytest.mark.parametrize(("text", "message", "position"), PARSE_ONE_ERRORS)
def test_parse_matcher_errors(text: str, message: str, position: int) -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matcher(text)
    assert caught.value.message == message
    assert caught.value.position == position


def test_regex_error_in_list_points_at_its_value_with_line_and_column() -> None:
    # The message names the matcher; position, line and column find it in a YAML block.
    text = '{\n  a = "b",\n  c =~ "(" \n}'
    with pytest.raises(MatcherError) as caught:
        parse_matchers(text)
    assert caught.value.message == (
        'invalid regex "(" in matcher c=~"(": missing ), unterminated subpattern'
    )
    assert (caught.value.position, caught.value.line, caught.value.column) == (20, 3, 8)
    assert text[caught.value.position] == '"'


def test_error_is_a_value_error_that_pickles() -> None:
    # Callers may catch ValueError; worker queues pickle exceptions.
    with pytest.raises(ValueError, match="unterminated") as caught:
        parse_matcher('a="b')
    copy = pickle.loads(pickle.dumps(caught.value))  # noqa: S301 - our own object
    assert isinstance(copy, MatcherError)
    assert (copy.message, copy.text, copy.position) == (
        "unterminated quoted string starting at column 3",
        'a="b',
        2,
    )


# --------------------------------------------------------------------------------------------
# Building matchers directly
# --------------------------------------------------------------------------------------------

CONSTRUCT_ERRORS = [
    # The same checks apply without the parser.
    pytest.param("", EQ, "x", 'label name must not be empty in matcher ""="x"', id="empty-name"),
    pytest.param(
        "a",
        RE,
        "(",
        'invalid regex "(" in matcher a=~"(": missing ), unterminated subpattern',
        id="bad-regex",
    ),
    pytest.param(
        "a",
        "==",
        "x",
        'unknown operator "==" in matcher a=="x": expected one of =, !=, =~, !~',
        id="bad-operator",
    ),
]


@pytest.mark.parametrize(("name", "type_", "value", "message"), CONSTRUCT_ERRORS)
def test_construct_errors(name: str, type_: str, value: str, message: str) -> None:
    with pytest.raises(MatcherError) as caught:
        Matcher(name, type_, value)  # type: ignore[arg-type]
    assert caught.value.message == message


def test_operator_text_is_accepted_as_type() -> None:
    # Callers building matchers from data may pass "=~"; it becomes the enum member.
    matcher = Matcher("a", "=~", "x.*")  # type: ignore[arg-type]
    assert matcher.type is MatchType.REGEX
    assert matcher == Matcher("a", RE, "x.*")
    assert matcher.matches({"a": "xyz"})


def test_regex_is_compiled_once_and_kept_out_of_eq_and_repr() -> None:
    # The pattern is built at construction, derived from the fields, and invisible otherwise.
    matcher = parse_matcher('team=~"db|storage"')
    assert isinstance(matcher._regex, re.Pattern)
    assert parse_matcher('team = "x"')._regex is None
    assert repr(matcher) == "Matcher(name='team', type=<MatchType.REGEX: '=~'>, value='db|storage')"
    assert matcher == Matcher("team", RE, "db|storage")
    assert hash(matcher) == hash(Matcher("team", RE, "db|storage"))


def test_matchers_are_immutable_and_replace_recompiles() -> None:
    # Frozen: a rule's matcher cannot change under a running router; replace() re-validates.
    matcher = parse_matcher('team=~"db"')
    with pytest.raises(dataclasses.FrozenInstanceError):
        matcher.value = "web"  # type: ignore[misc]
    changed = dataclasses.replace(matcher, value="web|api")
    assert changed.matches({"team": "api"})
    assert not matcher.matches({"team": "api"})
    with pytest.raises(MatcherError, match="invalid regex"):
        dataclasses.replace(matcher, value="(")
