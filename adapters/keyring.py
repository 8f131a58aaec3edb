"""Which secrets are valid now: the primary API key from the credentials, then the stored keys.

Every REST call (HTTP Basic) and every signaling connect (access token) asks; a short cache per
key SID keeps the database off that hot path. A revoked key therefore stops working within
`ttl_seconds`. Unknown SIDs are cached too (a client retrying with a bad key costs nothing),
and the cache is bounded, so made-up SIDs cannot grow it without limit.

Thread-safe: used from the event loop and from worker threads. A cache miss reads the
database (one indexed SELECT) on the caller's thread.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from typing import Final

from adapters.config import Credentials
from adapters.store.api_keys import ApiKeys
from domain.access import Grant, verify_token
from domain.ids import API_KEY_PREFIX, is_sid

MAX_CACHED: Final = 10_000


class KeyRing:
    def __init__(
        self,
        credentials: Credentials,
        keys: ApiKeys,
        clock: Callable[[], float],
        ttl_seconds: float = 2.0,
    ) -> None:
        self._credentials = credentials
        self._keys = keys
        self._clock = clock
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str | None, float]] = {}

    def secret_of(self, sid: str) -> str | None:
        """The secret of the active API key `sid`, or None (unknown or revoked)."""
        if sid == self._credentials.api_key_sid:
            return self._credentials.api_key_secret
        if not is_sid(sid, API_KEY_PREFIX):  # no stored key has another shape: no database read
            return None
        now = self._clock()
        with self._lock:
            cached = self._cache.get(sid)
        if cached is not None and cached[1] > now:
            return cached[0]
        secret = self._keys.secret(sid)  # outside the lock: two threads may both read, both agree
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._evict(now)
            self._cache[sid] = (secret, now + self._ttl)
        return secret

    def check_basic(self, username: str, password: str) -> bool:
        """HTTP Basic credentials: `AccountSid:AuthToken` or `ApiKeySid:ApiKeySecret`.

        Secrets are compared in constant time (as bytes: `compare_digest` refuses non-ASCII str).
        """
        credentials = self._credentials
        if username.startswith("AC"):
            account = hmac.compare_digest(_bytes(username), _bytes(credentials.account_sid))
            token = hmac.compare_digest(_bytes(password), _bytes(credentials.auth_token))
            return account & token
        secret = self.secret_of(username) if username else None
        if secret is None:
            return False
        return hmac.compare_digest(_bytes(password), _bytes(secret))

    def forget(self) -> None:
        """Drop every cached answer (after a revoke in this process, to apply it at once)."""
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        """Close the key store: the primary key still answers; a stored key raises ApiKeyStoreError."""
        self._keys.close()

    def _evict(self, now: float) -> None:
        """Called under the lock with a full cache: drop expired answers, or all if none expired."""
        expired = [sid for sid, (_, until) in self._cache.items() if until <= now]
        for sid in expired:
            del self._cache[sid]
        if not expired:
            self._cache.clear()


def _bytes(text: str) -> bytes:
    """UTF-8, also for the lone surrogates a decoded header may carry (never an exception)."""
    return text.encode("utf-8", "surrogatepass")


class TokenVerifier:
    """Access tokens of this account, checked against the key ring at the wall-clock time."""

    def __init__(self, keyring: KeyRing, account_sid: str, now: Callable[[], float] = time.time) -> None:
        self.keyring = keyring
        self.account_sid = account_sid
        self.now = now

    def verify(self, token: str) -> Grant:
        """The token's grant; an AccessTokenError (20101-20107) when it is refused."""
        return verify_token(token, account_sid=self.account_sid, secret_of=self.keyring.secret_of, now=int(self.now()))
