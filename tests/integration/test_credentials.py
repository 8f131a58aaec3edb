"""Generated credentials: created once per state directory, even by processes starting together."""

from __future__ import annotations

import multiprocessing
import stat

from adapters.config import load_credentials


def _account_sid(state_dir: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from pathlib import Path

    results.put(load_credentials(Path(state_dir), {}).account_sid)


def test_processes_starting_together_on_a_new_state_dir_agree_on_one_account(tmp_path):
    context = multiprocessing.get_context("fork")
    for trial in range(5):
        state_dir = tmp_path / f"state-{trial}"
        results = context.Queue()
        workers = [context.Process(target=_account_sid, args=(str(state_dir), results)) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        accounts = {results.get(timeout=5) for _ in workers}
        assert len(accounts) == 1
        assert stat.S_IMODE((state_dir / "credentials.json").stat().st_mode) == 0o600
        assert [p.name for p in state_dir.iterdir()] == ["credentials.json"]


def test_given_credentials_are_used_and_nothing_is_written(tmp_path):
    given = {
        "OPENROOMS_ACCOUNT_SID": "AC" + "1" * 32,
        "OPENROOMS_AUTH_TOKEN": "token",
        "OPENROOMS_API_KEY_SID": "SK" + "2" * 32,
        "OPENROOMS_API_KEY_SECRET": "secret",
    }

    credentials = load_credentials(tmp_path / "state", given)

    assert (credentials.account_sid, credentials.generated) == ("AC" + "1" * 32, False)
    assert not (tmp_path / "state").exists()
