"""The API's JSON parser: DRF's, with a nesting limit and no numbers that overflow to infinity.

Python's json module recurses once per nesting level, so a 2 KB body of 1,000 brackets raises
RecursionError (a 500) in the parser itself. The depth is measured before parsing, on the text, and the
text is bounded first so that measuring stays cheap.
"""

import json
import math
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils.json import strict_constant

# A string literal (skipped whole, so brackets inside it do not count) or one bracket.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def json_deeper_than(text: str, limit: int) -> bool:
    """Whether arrays and objects in `text` nest deeper than `limit`; malformed text is left to the parser."""
    if text.count("[") + text.count("{") <= limit:
        return False  # too few brackets to be that deep: no scan
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"the number {literal[:40]} is out of range")
    return value


class LimitedJSONParser(JSONParser):
    """JSON of at most GIZ_JSON_MAX_BYTES with at most GIZ_JSON_MAX_DEPTH levels of nesting; 1e999 is refused
    like Infinity and NaN."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        max_bytes = settings.GIZ_JSON_MAX_BYTES
        raw = stream.read(max_bytes + 1)
        if len(raw) > max_bytes:
            # Imported here: giz_site.exceptions imports DRF's views, whose settings import this module.
            from giz_site.exceptions import ApplicationError

            # Uploads may be larger (DATA_UPLOAD_MAX_MEMORY_SIZE); no JSON input needs to be, and parsing costs.
            raise ApplicationError(
                f"JSON bodies are limited to {max_bytes:,} bytes.",
                code="too_large",
                details={"max_bytes": max_bytes},
                status_code=413,
            )
        try:
            text = raw.decode(encoding)
        except UnicodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        limit = settings.GIZ_JSON_MAX_DEPTH
        if json_deeper_than(text, limit):
            raise ParseError(f"JSON parse error - nested deeper than the limit of {limit} levels.")
        try:
            return json.loads(text, parse_constant=strict_constant, parse_float=_finite_float)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
