"""common/json_codec.py: orjson's answers, the standard module's for what orjson
refuses, and the same error type for what is not JSON."""

from __future__ import annotations

import json
import math

import pytest

from flock.common.json_codec import dumps, loads


def test_round_trip_is_compact_utf8():
    value = {"Id": "abc", "Labels": {"é": "ü"}, "Ports": [{"PrivatePort": 80}], "Size": None}
    assert dumps(value) == b'{"Id":"abc","Labels":{"\xc3\xa9":"\xc3\xbc"},' \
                          b'"Ports":[{"PrivatePort":80}],"Size":null}'
    assert loads(dumps(value)) == value
    assert loads(dumps(value).decode()) == value  # str too


def test_what_orjson_refuses_the_standard_module_takes():
    assert math.isnan(loads(b"[NaN]")[0])  # json accepts NaN, orjson does not
    big = {"n": 2**70}
    assert json.loads(dumps(big)) == big  # orjson cannot write past 64 bits


def test_not_json_is_a_value_error():
    with pytest.raises(ValueError):
        loads(b"{not json")
