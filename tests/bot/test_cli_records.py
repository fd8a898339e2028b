"""`workflowbot suppress add|remove|list` and `records forget`, run as a user runs them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engine.runtime import Runtime
from storage.models import Contact, Event
from storage.workflow_models import Suppression
from tests.engine.harness import Harness
from tests.helpers import all_rows, count, one

pytestmark = pytest.mark.both_dbs


def test_suppress_add_list_and_remove_whatever_the_capitalization(
    cli: Callable[..., Any],
) -> None:
    added = cli("suppress", "add", "Bob@X.com")
    assert (added.exit_code, added.output) == (0, "Bob@X.com: suppressed\n")
    again = cli("suppress", "add", "bob@x.com", "--reason", "bounced")
    assert (again.exit_code, again.output) == (0, "bob@x.com: already suppressed\n")
    assert cli("suppress", "add", "al@y.org", "--reason", "unsubscribed").exit_code == 0

    listed = cli("suppress", "list").output.splitlines()
    assert [line.split()[:2] for line in listed] == [
        ["al@y.org", "unsubscribed"],
        ["Bob@X.com", "manual"],  # the first reason stays
    ]
    assert all(" UTC  cli:" in line for line in listed)

    removed = cli("suppress", "remove", "BOB@X.COM")
    assert (removed.exit_code, removed.output) == (0, "BOB@X.COM: no longer suppressed\n")
    gone = cli("suppress", "remove", "bob@x.com")
    assert gone.exit_code == 1
    assert "bob@x.com is not suppressed" in gone.output
    cli("suppress", "remove", "al@y.org")
    assert cli("suppress", "list").output == "no suppressed addresses\n"


def test_suppress_refuses_what_is_not_an_address_and_stores_nothing(
    cli: Callable[..., Any], db: Any
) -> None:
    bad = cli("suppress", "add", "bob")
    assert bad.exit_code == 2
    assert 'EMAIL: "bob" is not an email address (no @)' in bad.output
    assert "no dot in the domain" in cli("suppress", "add", "bob@localhost").output
    assert count(db, Suppression) == 0


@pytest.fixture
def wb(rt: Runtime) -> Harness:
    h = Harness(rt)
    h.group("acme", user="u1")
    h.group("acme", user="u2")
    h.identify("u1", email="bob@x.com", first_name="Bob", last_name="Stone", plan="pro")
    h.identify("u2", email="carol@x.com", name="Carol Reed")
    h.track("u1", "login")
    h.track("u1", "export_created", rows=12)
    h.track("u2", "login")
    h.evaluate()
    return h


def test_forget_erases_a_contact_and_says_what_went(cli: Callable[..., Any], wb: Harness) -> None:
    db = wb.rt.db
    bob = one(db, Contact, external_id="u1").id
    result = cli("records", "forget", "--contact", "u1")
    assert result.exit_code == 0, result.output
    # Two events, each one signal for the contact and one for its account.
    assert result.output == (
        "forgot contact u1: 2 events, 4 signals, 0 enrollments kept (anonymized)\n"
    )
    row = one(db, Contact, id=bob)
    assert (row.external_id, row.email, row.name, row.traits) == (
        f"forgotten-{bob}",
        None,
        None,
        {},
    )
    assert [(e.name, e.contact_id) for e in all_rows(db, Event)] == [
        ("login", one(db, Contact, external_id="u2").id)
    ]
    again = cli("records", "forget", "--contact", "u1")
    assert again.exit_code == 1
    assert 'no contact with the id "u1"' in again.output


def test_forget_of_an_unknown_contact_names_it_and_changes_nothing(
    cli: Callable[..., Any], wb: Harness
) -> None:
    result = cli("records", "forget", "--contact", "nobody@x", "--yes")
    assert result.exit_code == 1
    assert 'no contact with the id "nobody@x"' in result.output
    assert count(wb.rt.db, Event) == 3
    assert one(wb.rt.db, Contact, external_id="u1").email == "bob@x.com"
