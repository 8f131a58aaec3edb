"""Signed HTTP requests for status callbacks, as Twilio sends them (§5.2).

`X-Twilio-Signature` is base64(HMAC-SHA1(auth token, URL + every param name and value, sorted
by name)) for form POSTs; for GET the params are in the URL's query string and nothing is
appended. The URL signed is the one requested, byte for byte: it is sent without re-encoding.
A receiver checks it with the Twilio helper libraries (`RequestValidator(auth_token).validate`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from typing import Final, NamedTuple
from urllib.parse import urlencode

SIGNATURE_HEADER: Final = "X-Twilio-Signature"
IDEMPOTENCY_HEADER: Final = "I-Twilio-Idempotency-Token"
USER_AGENT: Final = "TwilioProxy/1.1"
CONTENT_TYPE: Final = "application/x-www-form-urlencoded"


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The `X-Twilio-Signature` of a request to `url` with form `params` (none for GET)."""
    data = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class SignedRequest(NamedTuple):
    method: str
    url: str
    """Exactly what is requested and signed (for GET including the query string)."""
    body: bytes | None
    headers: dict[str, str]


def with_query(url: str, query: str) -> str:
    """`url` with `query` appended to its query string (kept if it has one)."""
    if not query:
        return url
    separator = "" if url.endswith(("?", "&")) else "&" if "?" in url else "?"
    return url + separator + query


def signed_request(
    auth_token: str, *, url: str, method: str, params: Iterable[tuple[str, str]], token: str
) -> SignedRequest:
    """The request for one callback: POST with a form body, or GET with the params in the URL."""
    pairs = list(params)
    url = url.partition("#")[0]  # a fragment is never sent, so never signed
    headers = {
        "User-Agent": USER_AGENT,
        "Content-Type": CONTENT_TYPE,
        IDEMPOTENCY_HEADER: token,
    }
    if method.upper() == "GET":
        target = with_query(url, urlencode(pairs))
        headers[SIGNATURE_HEADER] = compute_signature(auth_token, target)
        return SignedRequest("GET", target, None, headers)
    headers[SIGNATURE_HEADER] = compute_signature(auth_token, url, pairs)
    return SignedRequest("POST", url, urlencode(pairs).encode(), headers)
