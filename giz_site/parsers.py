"""The API's JSON parser: DRF's, with a nesting limit and no numbers that overflow to infinity.

Python's json module recurses once per nesting level, so a 2 KB body of 1,000 brackets raises
RecursionError (a 500) in the parser itself. The depth is measured before parsing, on the text.
"""

import codecs
import json
import math
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils.json import strict_constant

# A string literal (skipped whole, so brackets inside it do not count) or one bracket.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text` (0 for a scalar); malformed text is not judged."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"the number {literal[:40]} is out of range")
    return value


class LimitedJSONParser(JSONParser):
    """JSON with at most GIZ_JSON_MAX_DEPTH levels of nesting; 1e999 is refused like Infinity and NaN."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        try:
            text = codecs.getreader(encoding)(stream).read()
        except (UnicodeError, ValueError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        limit = settings.GIZ_JSON_MAX_DEPTH
        if json_depth(text) > limit:
            raise ParseError(f"JSON parse error - nested deeper than the limit of {limit} levels.")
        try:
            return json.loads(text, parse_constant=strict_constant, parse_float=_finite_float)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
