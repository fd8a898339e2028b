"""`workflowbot import`: files in, records and events stored, bad rows named by file and line."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.cli import main
from engine.clock import SystemClock
from engine.ingest import importer
from storage.models import Account, Contact, Event, OutboxRow
from tests.helpers import count, one

pytestmark = pytest.mark.both_dbs

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(cli: Callable[..., Result]) -> Invoke:
    """Run `workflowbot import ARGS` on the test database and Redis."""
    return lambda *args: cli("import", *args)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(path: Path, *rows: dict[str, Any]) -> Path:
    return write(path, "".join(json.dumps(row) + "\n" for row in rows))


def test_accounts_csv_stores_each_account_with_its_traits(
    invoke: Invoke, db: Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "accounts.csv",
        "id,name,plan,health_score,owner\n"
        "acme,Acme Inc,pro,72,bob@acme.example\n"
        "globex,Globex,trial,,\n",
    )
    result = invoke("accounts", path)
    assert result.exit_code == 0, result.output
    assert f"Imported 2 of 2 rows from {path}" in result.stdout
    acme = one(db, Account, external_id="acme")
    assert (acme.name, acme.health_score, acme.owner_id is not None) == ("Acme Inc", 72.0, True)
    assert acme.traits == {
        "name": "Acme Inc",
        "plan": "pro",
        "health_score": "72",
        "owner": "bob@acme.example",
    }
    assert one(db, Account, external_id="globex").traits == {"name": "Globex", "plan": "trial"}


def test_an_empty_cell_leaves_the_trait_as_it_was(
    invoke: Invoke, db: Engine, tmp_path: Path
) -> None:
    assert (
        invoke("accounts", write(tmp_path / "a.csv", "id,plan,mrr\nacme,pro,10\n")).exit_code == 0
    )
    assert invoke("accounts", write(tmp_path / "b.csv", "id,plan,mrr\nacme,,20\n")).exit_code == 0
    assert one(db, Account, external_id="acme").traits == {"plan": "pro", "mrr": "20"}


def test_contacts_jsonl_link_to_their_account_and_take_nested_traits(
    invoke: Invoke, db: Engine, tmp_path: Path
) -> None:
    path = jsonl(
        tmp_path / "contacts.jsonl",
        {"id": "u1", "account_id": "acme", "email": "Ada@Example.com", "traits": {"plan": "pro"}},
        {"user_id": 42, "groupId": "acme", "seats": 3, "traits": {"first_name": "Bo"}},
    )
    result = invoke("contacts", path)
    assert result.exit_code == 0, result.output
    acme = one(db, Account, external_id="acme")
    ada, bo = one(db, Contact, external_id="u1"), one(db, Contact, external_id="42")
    assert (ada.account_id, bo.account_id) == (acme.id, acme.id)
    assert (ada.email, ada.traits["plan"]) == ("ada@example.com", "pro")
    assert (bo.name, bo.traits) == ("Bo", {"seats": 3, "first_name": "Bo"})

    invoke("contacts", jsonl(tmp_path / "clear.ndjson", {"id": "u1", "plan": None}))
    assert "plan" not in one(db, Contact, external_id="u1").traits


def test_events_csv_stores_events_with_properties_contact_and_account(
    invoke: Invoke, db: Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "events.csv",
        "user_id,event,timestamp,account_id,properties.plan,properties.seats\n"
        "u1,login,2026-11-01T10:00:00Z,acme,pro,3\n"
        "u2,export_created,2026-11-01T11:00:00Z,,,\n",
    )
    result = invoke("events", path)
    assert result.exit_code == 0, result.output
    assert "2 events stored" in result.stdout
    contact, acme = one(db, Contact, external_id="u1"), one(db, Account, external_id="acme")
    login = one(db, Event, name="login")
    assert (login.contact_id, login.account_id) == (contact.id, acme.id)
    assert login.properties == {"plan": "pro", "seats": "3"}
    assert login.timestamp.isoformat() == "2026-11-01T10:00:00+00:00"
    assert one(db, Event, name="export_created").properties == {}


def test_running_an_events_file_again_stores_each_event_once(
    invoke: Invoke, db: Engine, tmp_path: Path
) -> None:
    path = jsonl(
        tmp_path / "events.jsonl",
        {"user_id": "u1", "event": "login", "timestamp": "2026-11-01T10:00:00Z"},
        {"user_id": "u1", "event": "login", "timestamp": "2026-11-02T10:00:00Z"},
        {"userId": "u2", "name": "signup", "properties": {"plan": "trial"}},  # no timestamp
        {"user_id": "u3", "event": "login", "messageId": "m-1"},
    )
    assert invoke("events", path).exit_code == 0
    again = invoke("events", path)
    assert again.exit_code == 0, again.output
    assert "0 events stored, 4 repeats skipped" in again.stdout
    assert count(db, Event) == 4
    assert one(db, Event, name="signup").properties == {"plan": "trial"}


def test_an_interrupted_import_run_again_stores_each_event_once(db: Engine, tmp_path: Path) -> None:
    rows = [{"user_id": f"u{n}", "event": "login"} for n in range(5)]  # no ids, no timestamps
    path = jsonl(tmp_path / "events.jsonl", *rows)

    def interrupt(_ids: list[int]) -> None:
        raise KeyboardInterrupt

    clock = SystemClock()
    with pytest.raises(KeyboardInterrupt):
        importer.import_file(db, path, "events", clock=clock, on_commit=interrupt, batch_size=2)
    assert count(db, Event) == 2
    summary = importer.import_file(db, path, "events", clock=clock, on_commit=list, batch_size=2)
    assert (summary.events, summary.repeats, count(db, Event)) == (3, 2, 5)


def test_a_bad_row_is_named_by_file_line_and_column_and_nothing_is_written(
    invoke: Invoke, db: Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "accounts.csv",
        "id,name,health_score,owner\n"
        'acme,"Acme\nInc",50,\n'  # one row over lines 2 and 3
        "globex,Globex,150,\n"
        "\n"
        "initech,Initech,,nobody\n"
        ",Nameless,,\n",
    )
    result = invoke("accounts", path)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-4:] == [
        f"{path}:4: health_score: must be a number from 0 to 100",
        f"{path}:6: owner: must be an email address or a Slack user id (U…)",
        f"{path}:7: id: is required",
        "workflowbot: nothing imported: 3 of 4 rows invalid (--skip-invalid imports the other 1)",
    ]
    assert count(db, Account) == 0


def test_skip_invalid_writes_the_good_rows(invoke: Invoke, db: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "accounts.csv", "id,health_score\nacme,50\nglobex,150\ninitech,7\n")
    result = invoke("accounts", path, "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert f"{path}:3: health_score: must be a number from 0 to 100" in result.stderr
    assert "Imported 2 of 3 rows" in result.stdout
    assert "1 invalid row skipped" in result.stdout
    with Session(db) as s:
        assert set(s.scalars(select(Account.external_id))) == {"acme", "initech"}


@pytest.mark.parametrize(("flags", "signals"), [((), True), (("--no-signals",), False)])
def test_no_signals_writes_the_changes_as_a_backfill(
    invoke: Invoke, db: Engine, tmp_path: Path, flags: tuple[str, ...], signals: bool
) -> None:
    path = write(tmp_path / "events.csv", "user_id,event\nu1,login\nu2,login\n")
    assert invoke("events", path, *flags).exit_code == 0
    with Session(db) as s:
        rows = list(s.scalars(select(OutboxRow)))
    assert rows
    assert {row.signals for row in rows} == {signals}


def test_imported_changes_are_evaluated_by_the_worker(
    invoke: Invoke, db: Engine, tmp_path: Path, session_broker: dramatiq.Broker, worker: Any
) -> None:
    path = write(tmp_path / "contacts.csv", "id,plan\nu1,pro\nu2,trial\n")
    assert invoke("contacts", path, "--batch-size", "1").exit_code == 0
    session_broker.join("evaluate", timeout=10_000)
    with Session(db) as s:
        processed = list(s.scalars(select(OutboxRow.processed_at)))
    assert len(processed) == 2
    assert None not in processed


def test_a_csv_without_the_id_column_is_one_error(
    invoke: Invoke, db: Engine, tmp_path: Path
) -> None:
    path = write(tmp_path / "accounts.csv", "name,plan\n" + "Acme,pro\n" * 100)
    result = invoke("accounts", path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:1: id: column is missing (one of: id, account_id, groupId)",
        f"workflowbot: cannot import {path} as accounts",
    ]


def test_an_events_csv_column_that_is_not_a_property_is_refused(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = write(tmp_path / "events.csv", "user_id,event,plan\nu1,login,pro\n")
    result = invoke("events", path)
    assert result.exit_code == 1
    assert f"{path}:1: plan: is not an events column" in result.stderr


def test_bad_json_is_reported_at_its_line(invoke: Invoke, db: Engine, tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.jsonl",
        '{"user_id": "u1", "event": "login"}\n\n{"user_id": "u2",\n["not", "an", "object"]\n',
    )
    result = invoke("events", path)
    assert result.exit_code == 1
    assert f"{path}:3: row: is not valid JSON" in result.stderr
    assert f"{path}:4: row: must be a JSON object" in result.stderr
    assert count(db, Event) == 0


def test_the_format_comes_from_the_extension_or_the_option(
    invoke: Invoke, db: Engine, tmp_path: Path
) -> None:
    path = write(tmp_path / "accounts.txt", "id,plan\nacme,pro\n")
    refused = invoke("accounts", path)
    assert refused.exit_code == 1
    assert "cannot tell the format from the file name" in refused.stderr
    assert invoke("accounts", path, "--format", "csv").exit_code == 0
    assert one(db, Account, external_id="acme").traits == {"plan": "pro"}


def test_a_missing_file_is_a_usage_error(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("accounts", tmp_path / "nope.csv")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_the_problem_listing_is_capped(invoke: Invoke, tmp_path: Path) -> None:
    path = write(tmp_path / "accounts.csv", "id,health_score\n" + "acme,500\n" * 60)
    result = invoke("accounts", path)
    lines = result.stderr.splitlines()
    assert result.exit_code == 1
    assert sum(line.startswith(f"{path}:") for line in lines) == 50
    assert "... and 10 more" in lines


def test_help_lists_the_columns_of_each_kind() -> None:
    result = CliRunner().invoke(main, ["import", "--help"])
    assert result.exit_code == 0
    for words in ("account_id", "user_id", "properties.NAME", "--skip-invalid", "--no-signals"):
        assert words in result.stdout


class CountingStream(io.BytesIO):
    """A file that records how many bytes the reader has taken from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self.taken += len(line)
        return line

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.taken += len(data)
        return data


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_readers_read_no_further_than_the_rows_taken(fmt: str) -> None:
    line = '{"user_id": "u1", "event": "login"}\n' if fmt == "jsonl" else "u1,login\n"
    header = "" if fmt == "jsonl" else "user_id,event\n"
    stream = CountingStream((header + line * 10_000).encode())
    reader = importer.read_jsonl if fmt == "jsonl" else importer.read_csv
    records = list(itertools.islice(reader(stream, "events"), 3))
    assert [r.line for r in records] == ([1, 2, 3] if fmt == "jsonl" else [2, 3, 4])
    assert stream.taken == len(header) + 3 * len(line)


def test_batches_are_committed_while_the_file_is_read(db: Engine, tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "events.jsonl", *({"user_id": "u1", "event": f"e{n}"} for n in range(35))
    )
    stored: list[int] = []
    progress: list[tuple[str, int, int]] = []
    importer.import_file(
        db,
        path,
        "events",
        clock=SystemClock(),
        on_commit=lambda _ids: stored.append(count(db, Event)),
        batch_size=10,
        on_progress=lambda *args: progress.append(args),
    )
    assert stored == [10, 20, 30, 35]
    size = path.stat().st_size
    assert progress[-1] == ("write", size, size)
    assert ("check", size, size) in progress
