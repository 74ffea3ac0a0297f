"""protocols.xmlrpc._marshal: safe parsing of untrusted XML-RPC bodies, bytes only."""

from __future__ import annotations

import datetime
import gzip
import xmlrpc.client
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.xmlrpc._marshal import (
    INVALID_XMLRPC,
    PARSE_ERROR,
    UNSUPPORTED_ENCODING,
    Fault,
    Limits,
    MarshalError,
    PayloadTooLarge,
    XMLRPCLimits,
    decompress,
    dumps_fault,
    dumps_request,
    dumps_response,
    loads_request,
    loads_response,
)

LIMITS = XMLRPCLimits()


def call_with(value_xml: bytes, method: bytes = b"m") -> bytes:
    return (b"<?xml version='1.0'?><methodCall><methodName>" + method
            + b"</methodName><params><param><value>" + value_xml
            + b"</value></param></params></methodCall>")


def nested_arrays(depth: int) -> bytes:
    return b"<array><data><value>" * depth + b"<int>1</int>" + b"</value></data></array>" * depth


def code_of(body: bytes, limits: XMLRPCLimits = LIMITS) -> int:
    with pytest.raises(MarshalError) as info:
        loads_request(body, limits)
    return info.value.faultCode


# -- well-formed calls and responses ------------------------------------------------


def test_request_round_trip_with_every_type() -> None:
    when = datetime.datetime(2026, 11, 25, 23, 16, 0)
    params = (1, -2.5, "héllo", True, [1, [2, {"k": "v"}]], {"a": 1},
              xmlrpc.client.Binary(b"\x00\xff"), xmlrpc.client.DateTime(when), None)
    body = dumps_request("do.it", params, allow_none=True)
    got, method = loads_request(body, LIMITS)
    assert method == "do.it"
    assert got[:6] == params[:6]
    assert got[6].data == b"\x00\xff"
    assert got[7] == xmlrpc.client.DateTime(when)
    assert got[8] is None


def test_use_datetime_and_builtin_types() -> None:
    when = datetime.datetime(2000, 1, 2, 3, 4, 5)
    body = dumps_request("m", (when, xmlrpc.client.Binary(b"ab")))
    got, _ = loads_request(body, LIMITS, use_datetime=True)
    assert got[0] == when and isinstance(got[1], xmlrpc.client.Binary)
    got, _ = loads_request(body, LIMITS, use_builtin_types=True)
    assert got == (when, b"ab")


def test_response_value_and_fault() -> None:
    assert loads_response(dumps_response({"x": [1, 2]}), LIMITS) == {"x": [1, 2]}
    assert loads_response(dumps_response(None, allow_none=True), LIMITS) is None
    with pytest.raises(Fault) as info:
        loads_response(dumps_fault(Fault(8001, "procedure x not found")), LIMITS)
    assert (info.value.faultCode, info.value.faultString) == (8001, "procedure x not found")


def test_response_encoding_is_declared_and_used() -> None:
    body = dumps_response("é", encoding="iso-8859-1")
    assert b"iso-8859-1" in body and "é".encode("iso-8859-1") in body
    assert loads_response(body, LIMITS) == "é"


def test_none_without_allow_none_cannot_be_marshalled() -> None:
    with pytest.raises(TypeError):
        dumps_response(None)


def test_limits_alias_and_defaults() -> None:
    assert Limits is XMLRPCLimits
    assert LIMITS.max_depth > 0 and LIMITS.max_body is not None
    assert LIMITS.max_decompressed >= LIMITS.max_body


# -- refusals ------------------------------------------------------------------------


def test_malformed_xml_is_parse_error() -> None:
    assert code_of(b"<methodCall><methodName>x</methodName>") == PARSE_ERROR
    assert code_of(b"not xml at all") == PARSE_ERROR
    assert code_of(b"") == PARSE_ERROR


def test_wrong_root_and_incomplete_calls_are_invalid_xmlrpc() -> None:
    response = dumps_response(1)
    assert code_of(response) == INVALID_XMLRPC
    assert code_of(b"<methodCall><params/></methodCall>") == INVALID_XMLRPC
    assert code_of(call_with(b"<int>twelve</int>")) == INVALID_XMLRPC
    assert code_of(call_with(b"<bogus>1</bogus>")) == INVALID_XMLRPC


def test_fault_sent_as_a_call_is_invalid() -> None:
    body = dumps_fault(Fault(1, "x")).replace(b"methodResponse", b"methodCall")
    assert code_of(body) == INVALID_XMLRPC


def test_huge_integer_literal_is_refused_not_computed() -> None:
    assert code_of(call_with(b"<int>" + b"9" * 100_000 + b"</int>")) == INVALID_XMLRPC


@pytest.mark.parametrize("body", [
    # billion laughs
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    b"<methodCall><methodName>&lol2;</methodName></methodCall>",
    # external entity
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b"<methodCall><methodName>&xxe;</methodName></methodCall>",
    # external DTD
    b'<!DOCTYPE methodCall SYSTEM "http://127.0.0.1:1/evil.dtd">'
    b"<methodCall><methodName>m</methodName></methodCall>",
    # parameter entity
    b'<!DOCTYPE x [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
    b"<methodCall><methodName>m</methodName></methodCall>",
    # a harmless-looking DOCTYPE is refused all the same
    b"<!DOCTYPE methodCall><methodCall><methodName>m</methodName></methodCall>",
])
def test_dtds_and_entities_are_refused(body: bytes) -> None:
    with pytest.raises(MarshalError) as info:
        loads_request(body, LIMITS)
    assert info.value.faultCode == PARSE_ERROR
    assert "passwd" not in info.value.faultString and "root:" not in info.value.faultString


def test_doctype_in_utf16_is_refused_too() -> None:
    # A byte scan for "<!DOCTYPE" would miss this; the parser does not.
    text = ('<?xml version="1.0" encoding="utf-16"?><!DOCTYPE x [<!ENTITY a "b">]>'
            "<methodCall><methodName>&a;</methodName></methodCall>")
    assert code_of(text.encode("utf-16")) == PARSE_ERROR


def test_undeclared_entity_is_a_parse_error() -> None:
    assert code_of(call_with(b"<string>&nope;</string>")) == PARSE_ERROR


def test_nesting_up_to_the_limit_is_accepted_and_beyond_refused() -> None:
    limits = XMLRPCLimits(max_depth=10)
    params, _ = loads_request(call_with(nested_arrays(10)), limits)
    value = params[0]
    for _ in range(9):
        value = value[0]
    assert value == [1]
    assert code_of(call_with(nested_arrays(11)), limits) == PARSE_ERROR
    struct = b"<struct><member><name>k</name><value>" * 11
    assert code_of(call_with(struct), limits) == PARSE_ERROR


def test_deep_unknown_elements_are_refused_by_element_depth() -> None:
    limits = XMLRPCLimits(max_depth=2)
    body = b"<methodCall>" + b"<x>" * 100 + b"</x>" * 100 + b"</methodCall>"
    assert code_of(body, limits) == PARSE_ERROR


def test_very_deep_nesting_fails_fast_without_recursion_error() -> None:
    assert code_of(call_with(nested_arrays(100_000))) == PARSE_ERROR


def test_body_over_max_body_is_payload_too_large() -> None:
    body = dumps_request("m", ("x" * 2000,))
    with pytest.raises(PayloadTooLarge):
        loads_request(body, XMLRPCLimits(max_body=1000))
    with pytest.raises(PayloadTooLarge):
        loads_response(dumps_response("x" * 2000), XMLRPCLimits(max_body=1000))
    assert loads_request(body, XMLRPCLimits(max_body=None))[1] == "m"


def test_response_must_hold_exactly_one_value() -> None:
    body = (b"<methodResponse><params><param><value><int>1</int></value></param>"
            b"<param><value><int>2</int></value></param></params></methodResponse>")
    with pytest.raises(MarshalError) as info:
        loads_response(body, LIMITS)
    assert info.value.faultCode == INVALID_XMLRPC
    with pytest.raises(MarshalError):
        loads_response(dumps_request("m", ()), LIMITS)


def test_fault_with_wrong_member_types_is_malformed() -> None:
    body = (b"<methodResponse><fault><value><struct>"
            b"<member><name>faultCode</name><value><string>x</string></value></member>"
            b"<member><name>faultString</name><value><int>1</int></value></member>"
            b"</struct></value></fault></methodResponse>")
    with pytest.raises(MarshalError):
        loads_response(body, LIMITS)
    missing = b"<methodResponse><fault><value><struct></struct></value></fault></methodResponse>"
    with pytest.raises(MarshalError):
        loads_response(missing, LIMITS)


# -- decompression -------------------------------------------------------------------


def test_gzip_and_deflate_bodies_inflate() -> None:
    body = dumps_request("m", (1,))
    assert decompress(gzip.compress(body), "gzip", LIMITS) == body
    assert decompress(gzip.compress(body), " X-GZIP ", LIMITS) == body
    assert decompress(zlib.compress(body), "deflate", LIMITS) == body
    assert decompress(body, "identity", LIMITS) == body
    assert decompress(body, "", LIMITS) == body
    two = gzip.compress(body[:10]) + gzip.compress(body[10:])
    assert decompress(two, "gzip", LIMITS) == body


def test_zip_bomb_is_refused_with_bounded_work() -> None:
    bomb = gzip.compress(b"\0" * 20_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLarge):
        decompress(bomb, "gzip", XMLRPCLimits(max_decompressed=1_000_000))
    exact = gzip.compress(b"a" * 1000)
    assert len(decompress(exact, "gzip", XMLRPCLimits(max_decompressed=1000))) == 1000
    with pytest.raises(PayloadTooLarge):
        decompress(exact, "gzip", XMLRPCLimits(max_decompressed=999))


def test_members_together_are_bounded_too() -> None:
    member = gzip.compress(b"a" * 600)
    with pytest.raises(PayloadTooLarge):
        decompress(member + member, "gzip", XMLRPCLimits(max_decompressed=1000))


def test_corrupt_truncated_and_unknown_encodings() -> None:
    good = gzip.compress(b"hello world" * 10)
    with pytest.raises(MarshalError) as info:
        decompress(b"not gzip at all", "gzip", LIMITS)
    assert info.value.faultCode == PARSE_ERROR
    with pytest.raises(MarshalError) as info:
        decompress(good[:-12], "gzip", LIMITS)
    assert info.value.faultCode == PARSE_ERROR
    with pytest.raises(MarshalError) as info:
        decompress(good, "br", LIMITS)
    assert info.value.faultCode == UNSUPPORTED_ENCODING


def test_marshal_error_text_and_fault() -> None:
    error = MarshalError(PARSE_ERROR, "nope")
    assert str(error) == "nope (-32700)"
    fault = error.toFault()
    assert (fault.faultCode, fault.faultString) == (PARSE_ERROR, "nope")
    assert isinstance(PayloadTooLarge("big"), MarshalError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_marshal_error(data: bytes) -> None:
    for body in (data, b"<methodCall>" + data, call_with(data)):
        try:
            loads_request(body, LIMITS)
        except MarshalError:
            pass
        try:
            loads_response(body, LIMITS)
        except (MarshalError, Fault):
            pass


# -- the faster paths give what the stdlib gives -------------------------------------

# Characters XML can carry as text (no controls, surrogates or non-characters).
_XML_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")) | st.sampled_from(
    "\t\n&<>"), max_size=20)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**31, 2**31 - 1)
    | st.floats(allow_nan=False) | _XML_TEXT | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(_XML_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.tuples(_VALUES, _VALUES), st.booleans())
def test_parsing_matches_the_stdlib_unmarshaller(params: tuple[object, object],
                                                 builtin: bool) -> None:
    # The checked Unmarshaller folds the stdlib's start/end into its own.
    body = dumps_request("m.name", params, allow_none=True)
    expected = xmlrpc.client.loads(body, use_builtin_types=builtin)
    assert loads_request(body, LIMITS, use_builtin_types=builtin) == expected
    response = dumps_response(params[0], allow_none=True)
    assert loads_response(response, LIMITS, use_builtin_types=builtin) == \
        xmlrpc.client.loads(response, use_builtin_types=builtin)[0][0]


def test_text_around_and_inside_elements_is_read_as_the_stdlib_reads_it() -> None:
    # Text before a child is dropped, text after it kept for the parent; an
    # untyped value is a string; prefixed (extension) tags lose their prefix.
    bodies = [
        call_with(b"  <int> 7 </int>  "),
        call_with(b"plain &amp; &lt;text&gt;"),
        call_with(b"<string>a</string>tail"),
        call_with(b"<array><data> <value>1</value> <value><i4>2</i4></value> </data></array>"),
        call_with(b"<struct><member><name>k</name><value><ex:i8 xmlns:ex='x'>9</ex:i8>"
                  b"</value></member></struct>"),
        call_with(b"<ex:nil xmlns:ex='x'/>"),
    ]
    for body in bodies:
        assert loads_request(body, LIMITS) == xmlrpc.client.loads(body)


@given(st.integers(-2**31, 2**31 - 1))
def test_int_response_is_byte_for_byte_the_stdlibs(value: int) -> None:
    assert dumps_response(value) == xmlrpc.client.dumps((value,), methodresponse=True).encode()
    assert dumps_response(value, encoding="iso-8859-1") == xmlrpc.client.dumps(
        (value,), methodresponse=True, encoding="iso-8859-1").encode("iso-8859-1")


def test_int_response_out_of_range_still_overflows() -> None:
    with pytest.raises(OverflowError):
        dumps_response(2**31)
    assert b"<boolean>1</boolean>" in dumps_response(True)  # a bool is not an int here
