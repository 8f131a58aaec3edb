"""API keys and the key ring, against each real read-model database: one contract, one subclass
per backend (a SQLite file, the embedded PostgreSQL server).

What an operator and a client see: a created key signs tokens and authenticates REST calls,
listing never shows a secret, a revoked key stops working within the ring's cache time, keys
outlive the process that created them, and the primary key from the credentials always works.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from adapters.config import Credentials
from adapters.keyring import KeyRing
from adapters.store.api_keys import ApiKeys, ApiKeyStoreError
from adapters.store.sql import Database
from adapters.store.url import parse_store_url
from domain.access import mint_token, verify_token
from domain.errors import AccessTokenIssuerInvalidError

CREDENTIALS = Credentials(
    account_sid="AC" + "0" * 32,
    auth_token="auth-token-" + "t" * 21,
    api_key_sid="SK" + "1" * 32,
    api_key_secret="primary-secret-" + "p" * 17,
)
NOW = 1_795_464_560


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def open_database(store_url: str) -> Database:
    return Database.from_url(parse_store_url(store_url).read_model_url())


def token_for(sid: str, secret: str, identity: str = "alice") -> str:
    return mint_token(account_sid=CREDENTIALS.account_sid, key_sid=sid, key_secret=secret, identity=identity, now=NOW)


class ApiKeysContract:
    """Subclasses provide `store_url`."""

    @pytest.fixture
    def store_url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def db(self, store_url: str) -> Iterator[Database]:
        database = open_database(store_url)
        yield database
        database.close()

    @pytest.fixture
    def keys(self, db: Database) -> ApiKeys:
        return ApiKeys(db, clock=lambda: NOW + 0.25)

    def test_a_created_key_has_an_sk_sid_and_a_secret_that_signs_accepted_tokens(self, keys: ApiKeys) -> None:
        sid, secret = keys.create("mobile app")
        assert sid.startswith("SK") and len(sid) == 34 and int(sid[2:], 16) >= 0
        assert len(secret) == 32
        grant = verify_token(
            token_for(sid, secret), account_sid=CREDENTIALS.account_sid, secret_of=keys.secret, now=NOW
        )
        assert (grant.identity, grant.key_sid) == ("alice", sid)

    def test_listing_shows_name_creation_time_and_status_but_never_a_secret(self, keys: ApiKeys) -> None:
        first, first_secret = keys.create("mobile app")
        second, second_secret = keys.create()
        listed = keys.list()
        assert {(k.sid, k.friendly_name, k.date_created, k.active) for k in listed} == {
            (first, "mobile app", (NOW * 1_000_000) + 250_000, True),
            (second, "", (NOW * 1_000_000) + 250_000, True),
        }
        assert first_secret not in repr(listed) and second_secret not in repr(listed)

    def test_a_revoked_key_has_no_secret_and_is_listed_as_revoked(self, keys: ApiKeys) -> None:
        sid, _ = keys.create("old")
        kept, kept_secret = keys.create("kept")
        assert keys.revoke(sid) is True
        assert keys.secret(sid) is None
        assert keys.secret(kept) == kept_secret
        assert {k.sid: k.revoked for k in keys.list()} == {sid: NOW * 1_000_000 + 250_000, kept: None}

    def test_revoking_an_unknown_or_already_revoked_key_answers_false(self, keys: ApiKeys) -> None:
        sid, _ = keys.create()
        assert keys.revoke("SK" + "9" * 32) is False
        assert keys.revoke(sid) is True
        assert keys.revoke(sid) is False

    def test_keys_outlive_the_process_that_created_them(self, store_url: str, keys: ApiKeys) -> None:
        sid, secret = keys.create("ci")
        keys.db.close()
        reopened = open_database(store_url)
        try:
            again = ApiKeys(reopened)  # the table exists already: created once, kept
            assert again.secret(sid) == secret
            assert [k.friendly_name for k in again.list()] == ["ci"]
        finally:
            reopened.close()

    # --- the key ring --------------------------------------------------------------------------

    def test_the_ring_accepts_tokens_from_the_primary_key_and_from_stored_keys(self, keys: ApiKeys) -> None:
        ring = KeyRing(CREDENTIALS, keys, FakeClock())
        sid, secret = keys.create()
        for key_sid, key_secret in ((CREDENTIALS.api_key_sid, CREDENTIALS.api_key_secret), (sid, secret)):
            token = token_for(key_sid, key_secret)
            grant = verify_token(token, account_sid=CREDENTIALS.account_sid, secret_of=ring.secret_of, now=NOW)
            assert grant.key_sid == key_sid

    def test_a_revoked_key_stops_working_once_the_ring_cache_time_has_passed(self, keys: ApiKeys) -> None:
        clock = FakeClock()
        ring = KeyRing(CREDENTIALS, keys, clock, ttl_seconds=2.0)
        sid, secret = keys.create()
        assert ring.check_basic(sid, secret)
        keys.revoke(sid)
        clock.now += 1.9
        assert ring.check_basic(sid, secret)  # still cached: the hot path did not ask the database
        clock.now += 0.2
        assert not ring.check_basic(sid, secret)
        with pytest.raises(AccessTokenIssuerInvalidError):
            verify_token(token_for(sid, secret), account_sid=CREDENTIALS.account_sid, secret_of=ring.secret_of, now=NOW)

    def test_an_unknown_key_is_remembered_as_unknown_for_the_cache_time(self, keys: ApiKeys) -> None:
        clock = FakeClock()
        ring = KeyRing(CREDENTIALS, keys, clock, ttl_seconds=2.0)
        sid = "SK" + "5" * 32
        assert ring.secret_of(sid) is None
        with keys.db.transaction() as cur:  # the key appears (another process restored it)
            cur.execute(
                "INSERT INTO api_keys (sid, secret, friendly_name, date_created) VALUES (?, ?, ?, ?)",
                (sid, "restored-secret", "restored", NOW * 1_000_000),
            )
        assert ring.secret_of(sid) is None
        clock.now += 2.0
        assert ring.secret_of(sid) == "restored-secret"

    def test_a_primary_key_sid_of_any_shape_works_and_junk_sids_never_reach_the_store(self, keys: ApiKeys) -> None:
        custom = Credentials(CREDENTIALS.account_sid, CREDENTIALS.auth_token, "my-key", "my-secret-" + "m" * 22)
        ring = KeyRing(custom, keys, FakeClock())
        keys.close()  # any store read would now raise
        assert ring.check_basic("my-key", custom.api_key_secret)
        assert ring.secret_of("x" * 10_000) is None
        assert not ring.check_basic("SK-not-a-sid", "anything")

    @pytest.mark.parametrize(
        ("username", "password", "accepted"),
        [
            (CREDENTIALS.account_sid, CREDENTIALS.auth_token, True),
            (CREDENTIALS.api_key_sid, CREDENTIALS.api_key_secret, True),
            (CREDENTIALS.account_sid, CREDENTIALS.api_key_secret, False),
            (CREDENTIALS.api_key_sid, CREDENTIALS.auth_token, False),
            ("AC" + "f" * 32, CREDENTIALS.auth_token, False),
            ("", "", False),
            (CREDENTIALS.account_sid, "", False),
            (CREDENTIALS.account_sid, "pässwörd", False),
            ("SK" + "9" * 32, CREDENTIALS.api_key_secret, False),
        ],
    )
    def test_basic_auth_accepts_the_account_with_its_auth_token_or_a_key_with_its_secret(
        self, keys: ApiKeys, username: str, password: str, accepted: bool
    ) -> None:
        assert KeyRing(CREDENTIALS, keys, FakeClock()).check_basic(username, password) is accepted

    def test_basic_auth_accepts_a_stored_key_with_its_secret_only(self, keys: ApiKeys) -> None:
        ring = KeyRing(CREDENTIALS, keys, FakeClock())
        sid, secret = keys.create()
        assert ring.check_basic(sid, secret)
        assert not ring.check_basic(sid, secret + "x")
        assert not ring.check_basic(sid, CREDENTIALS.api_key_secret)

    def test_a_closed_ring_still_knows_the_primary_key_and_says_the_store_is_closed(self, keys: ApiKeys) -> None:
        ring = KeyRing(CREDENTIALS, keys, FakeClock())
        sid, _ = keys.create()
        ring.close()
        assert ring.secret_of(CREDENTIALS.api_key_sid) == CREDENTIALS.api_key_secret
        with pytest.raises(ApiKeyStoreError, match="is closed"):
            ring.secret_of(sid)

    def test_the_ring_answers_threads_asking_at_once(self, keys: ApiKeys) -> None:
        ring = KeyRing(CREDENTIALS, keys, FakeClock(), ttl_seconds=0.0)  # every call reads the database
        created = [keys.create(f"key {n}") for n in range(4)]
        failures: list[str] = []

        def ask() -> None:
            for _ in range(25):
                for sid, secret in created:
                    if ring.secret_of(sid) != secret:
                        failures.append(sid)

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == []


class TestSQLiteApiKeys(ApiKeysContract):
    @pytest.fixture
    def store_url(self, sqlite_store_url: str) -> str:
        return sqlite_store_url


@pytest.mark.postgres
class TestPostgresApiKeys(ApiKeysContract):
    @pytest.fixture
    def store_url(self, postgres_store_url: str) -> str:
        return postgres_store_url
