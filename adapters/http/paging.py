"""Twilio's list pages: `PageSize` (1..1000, default 50), `Page`, `PageToken`, and the `meta` block.

    {"rooms": [...], "meta": {"page": 0, "page_size": 50, "first_page_url": "...",
     "previous_page_url": null, "url": "...", "next_page_url": "...", "key": "rooms"}}

The helper libraries follow `meta.next_page_url` verbatim, so it is absolute (the public URL) and
carries the filters, `PageSize`, `Page` and the keyset `PageToken` of the next page.
`previous_page_url` is null: pages are keyset pages, read forwards.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import urlencode

from multidict import MultiMapping

from adapters.http.params import PAGING, BadParameterError, read

DEFAULT_PAGE_SIZE = 50


class Paging(NamedTuple):
    page_size: int
    page: int
    page_token: str | None


def read_paging(query: MultiMapping[str], cap: int = 1000) -> Paging:
    """The paging parameters; `PageSize` goes up to `cap` (1000; 100 for recordings, as Twilio's spec)."""
    given = read(query, PAGING)
    size = given.get("page_size", DEFAULT_PAGE_SIZE)
    if not 1 <= size <= cap:
        raise BadParameterError(f"Invalid PageSize {size}: expected 1 to {cap}")
    page = given.get("page", 0)
    if page < 0:
        raise BadParameterError(f"Invalid Page {page}: expected 0 or more")
    return Paging(size, page, given.get("page_token") or None)


def page_body(
    key: str, items: list[Any], next_token: str | None, paging: Paging, url: str, filters: list[tuple[str, str]]
) -> dict[str, Any]:
    def page_url(page: int, token: str | None) -> str:
        query = [*filters, ("PageSize", str(paging.page_size)), ("Page", str(page))]
        if token is not None:
            query.append(("PageToken", token))
        return f"{url}?{urlencode(query)}"

    return {
        key: items,
        "meta": {
            "page": paging.page,
            "page_size": paging.page_size,
            "first_page_url": page_url(0, None),
            "previous_page_url": None,
            "url": page_url(paging.page, paging.page_token),
            "next_page_url": page_url(paging.page + 1, next_token) if next_token is not None else None,
            "key": key,
        },
    }
