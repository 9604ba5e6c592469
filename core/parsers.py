"""The JSON parser of every DRF view (settings.REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"])."""

import codecs
import sys

from rest_framework import exceptions
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json

# Python's own limit: past it int() raises a ValueError whose message tells the client to
# call sys.set_int_max_str_digits().
_JSON_INTEGER_MAX_DIGITS = sys.int_info.default_max_str_digits


def _json_integer(text: str) -> int:
    if len(text.lstrip("-")) > _JSON_INTEGER_MAX_DIGITS:
        raise ValueError(f"a number has more than {_JSON_INTEGER_MAX_DIGITS} digits.")
    return int(text)


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, plus: nesting too deep for Python's decoder and integers too long
    for it are a 400 with a plain message, not a 500 or one about Python's settings."""

    def parse(self, stream, media_type=None, parser_context=None):
        decoded = codecs.getreader(get_encoding(parser_context or {}))(stream)
        parse_constant = json.strict_constant if self.strict else None
        try:
            return json.load(decoded, parse_constant=parse_constant, parse_int=_json_integer)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.")
        except ValueError as error:
            raise exceptions.ParseError(f"JSON parse error - {error}")
