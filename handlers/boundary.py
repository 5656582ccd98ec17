"""The HTTP edge for Slack: read the body with a limit, verify its signature, parse it
once, and only then hand it to Bolt.

Bolt's WSGI adapter decodes and parses a body before it checks the signature, so that
a body that is not UTF-8, a `payload` that is not JSON or a non-numeric timestamp end
in a 500 and a traceback, signed or not. And its parser guesses the format from the
text: any form body containing the word "payload" is read as interactivity, which makes
`/request-access prod 1h fix the payload parser` an empty request. Here each refusal is
a 4xx with one warning line, and Bolt gets the body we parsed and checked.
"""

import binascii
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from slack_bolt import App, BoltRequest

from accessbot.handlers.payloads import MalformedPayload, check_envelope

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024  # the largest view_submission we expect is a few tens of KiB
MAX_SKEW = 5 * 60  # seconds between Slack's timestamp and our clock, as Slack advises
MAX_DEPTH = 32  # JSON nesting; Slack's deepest payloads (rich text in a view) need ~12
MAX_FIELDS = 100  # form fields; a slash command has about 15
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


class Rejected(Exception):
    """A request refused at the edge, with the status it gets."""

    def __init__(self, status: HTTPStatus, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def content_length(environ: Mapping[str, Any]) -> int:
    """The body's size as its Content-Length says, refused when missing, not a number or
    above MAX_BODY."""
    length = environ.get("CONTENT_LENGTH") or ""
    if not length:
        raise Rejected(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
    if not (length.isascii() and length.isdigit()):
        raise Rejected(HTTPStatus.BAD_REQUEST, "Content-Length is not a number")
    size = int(length)
    if size > MAX_BODY:
        raise Rejected(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
    return size


def read_body(environ: Mapping[str, Any]) -> bytes:
    """The body, exactly Content-Length bytes, refused above MAX_BODY without reading it."""
    size = content_length(environ)
    body = environ["wsgi.input"].read(size)
    if len(body) != size:
        raise Rejected(HTTPStatus.BAD_REQUEST, "body shorter than its Content-Length")
    return body


def verify_signature(secret: bytes, environ: Mapping[str, Any], body: bytes,
                     now: float) -> None:
    """Slack's v0 signature: HMAC-SHA256 of "v0:<timestamp>:<raw body>", recent."""
    timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or ""
    signature = environ.get("HTTP_X_SLACK_SIGNATURE") or ""
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise Rejected(HTTPStatus.UNAUTHORIZED, "missing or non-numeric timestamp")
    if abs(now - int(timestamp)) > MAX_SKEW:
        raise Rejected(HTTPStatus.UNAUTHORIZED, "timestamp too far from now")
    signed = b"v0:" + timestamp.encode() + b":" + body
    expected = b"v0=" + hmac.new(secret, signed, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, signature.encode(errors="replace")):
        raise Rejected(HTTPStatus.UNAUTHORIZED, "missing or invalid signature")


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """A verified body as Slack's one object: form fields, interactivity's `payload`
    object, or a JSON object (url_verification, events)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(HTTPStatus.BAD_REQUEST, "body is not UTF-8") from None
    if content_type == FORM:
        data = _form(text)
    elif content_type == JSON:
        data = _json_object(text)
    else:
        raise Rejected(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"unexpected content type "
                       f"{content_type[:50]!r}")
    try:
        check_envelope(data)
    except MalformedPayload as exc:
        raise Rejected(HTTPStatus.BAD_REQUEST, f"malformed payload: {exc}") from None
    return data


def _form(text: str) -> dict[str, Any]:
    """Flat fields (slash commands), or one `payload` field holding a JSON object."""
    if text.startswith("payload=") and "&" not in text:  # interactivity: one field
        try:
            return _json_object(_unquote_plus(text[len("payload="):]))
        except UnicodeDecodeError:
            raise Rejected(HTTPStatus.BAD_REQUEST, "not a form Slack sends") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict",
                          max_num_fields=MAX_FIELDS)
    except ValueError:  # too many fields, or %-escapes that are not UTF-8
        raise Rejected(HTTPStatus.BAD_REQUEST, "not a form Slack sends") from None
    fields = dict(pairs)
    if not fields or len(fields) != len(pairs):
        raise Rejected(HTTPStatus.BAD_REQUEST, "empty form, or a field given twice")
    if "payload" not in fields:
        return fields
    if len(fields) != 1:
        raise Rejected(HTTPStatus.BAD_REQUEST, "payload beside other form fields")
    return _json_object(fields["payload"])


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _unquote_plus(value: str) -> str:
    """urllib's unquote_plus (UTF-8, strict), in C. An interactivity payload is JSON with
    hundreds to thousands of %-escapes, which urllib decodes one at a time in Python: 100
    µs for 3 KB, the largest part of an acknowledgement's own work. binascii's
    quoted-printable decoder does "=XX" in C; a value with no "=", no line break and no
    malformed escape decodes the same with "%" written as "=" (and "+" as a space, "=20").
    Any other value takes urllib's way."""
    if (not value.isascii() or "=" in value or "\n" in value or "\r" in value
            or _BAD_ESCAPE.search(value)):
        return unquote_plus(value, errors="strict")
    return binascii.a2b_qp(value.replace("%", "=").replace("+", "=20")).decode()


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise Rejected(HTTPStatus.BAD_REQUEST, "payload is not JSON") from None
    if not isinstance(value, dict):
        raise Rejected(HTTPStatus.BAD_REQUEST, "payload is not a JSON object")
    if _too_deep(value, text):
        raise Rejected(HTTPStatus.BAD_REQUEST, f"payload nested deeper than {MAX_DEPTH}")
    return value


def _too_deep(value: Any, text: str) -> bool:
    """Nesting deeper than MAX_DEPTH, found without recursion, one level at a time and
    only through containers (a click's copy has a few hundred strings, and the walk is
    Python); and without a walk when the text has too few brackets to nest so deep (every
    command). `value` is what json.loads made of `text`: only its dicts and lists nest."""
    if text.count("{") + text.count("[") <= MAX_DEPTH:
        return False
    level, depth = [value], 1
    while level:
        if depth > MAX_DEPTH:
            return True
        level = [child for item in level
                 for child in (item.values() if type(item) is dict else item)
                 if type(child) in (dict, list)]
        depth += 1
    return False


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers, by lower-case name, as Bolt's adapter reads them."""
    headers = {key[5:].lower().replace("_", "-"): value for key, value in environ.items()
               if key.startswith("HTTP_")}
    headers["content-type"] = environ.get("CONTENT_TYPE", "")
    return headers


def content_type(environ: Mapping[str, Any]) -> str:
    return (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()


class SlackEndpoint:
    """POST /slack/events as a WSGI app: the checks above, then Bolt."""

    def __init__(self, app: App, signing_secret: str, clock: Callable[[], float] = time.time):
        self.app = app
        self.secret = signing_secret.encode()
        self.clock = clock

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            request = self.verified_request(environ)
        except Rejected as rejected:
            log.warning("Slack request refused: %d %s", rejected.status, rejected.reason)
            return _answer(start_response, rejected.status,
                           {"content-type": ["text/plain; charset=utf-8"]},
                           rejected.reason + "\n")
        response = self.app.dispatch(request)
        return _answer(start_response, response.status, response.headers, response.body)

    def verified_request(self, environ: Mapping[str, Any]) -> BoltRequest:
        """Bolt's request for a body that passed every check, or Rejected."""
        body = read_body(environ)
        verify_signature(self.secret, environ, body, self.clock())
        data = parse_body(body, content_type(environ))
        # Bolt takes an already parsed body only in its Socket Mode form, whose transport
        # it does not verify again: here the signature has been checked just above. Bolt
        # logs while it builds the context (several response_urls), before it adds its
        # own logger: give it one.
        return BoltRequest(body=data, headers=_headers(environ),
                           query=environ.get("QUERY_STRING", ""), mode="socket_mode",
                           context={"logger": log})


def header_pairs(headers: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """A BoltResponse's headers as (name, value) pairs, without its Content-Length (the
    server's writer counts the body it sends)."""
    return [(name, value) for name, values in headers.items()
            if name.lower() != "content-length" for value in values]


def _answer(start_response: Callable, status: int, headers: Mapping[str, Sequence[str]],
            body: str) -> list[bytes]:
    """A BoltResponse's parts as a WSGI response, as Bolt's WSGI adapter writes them."""
    data = body.encode()
    start_response(f"{status} {HTTPStatus(status).phrase}",
                   [*header_pairs(headers), ("content-length", str(len(data)))])
    return [data]
