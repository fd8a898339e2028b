"""Writes lumen.jsonl, the demo's sample dataset, deterministically (`python generate.py`).

Lumen is a fictional SaaS. Each line is one Segment-spec call (`group`, `identify`, `track`)
with `at`, its time in minutes from the start of the simulated month: negative lines are
history (loaded without signals), the rest are replayed in time order on the demo's clock.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

SEED = 20261126
ACCOUNTS = 240
DAYS = 30
MINUTES_A_DAY = 24 * 60

_FIRST = [
    "Maria",
    "Ben",
    "Chloe",
    "Dev",
    "Emma",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kemal",
    "Lena",
    "Malik",
    "Nora",
    "Omar",
    "Priya",
]
_LAST = [
    "Alvarez",
    "Brown",
    "Chen",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
]
_PARTS = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Gringotts",
    "Pied",
    "Aperture",
    "Massive",
    "Dunder",
    "Oscorp",
    "Nakatomi",
    "Monarch",
    "Sterling",
    "Bluth",
    "Prestige",
    "Virtucon",
    "Zorg",
    "Kramerica",
    "Oceanic",
    "Octan",
    "Gekko",
    "Duff",
]
_SUFFIX = [
    "Labs",
    "Systems",
    "Group",
    "Works",
    "Analytics",
    "Health",
    "Logistics",
    "Foods",
    "Media",
    "Capital",
    "Robotics",
]
_PLANS = [("trial", 0), ("starter", 99), ("pro", 499), ("enterprise", 2500)]
_STAGES = ["Onboarding", "Adoption", "Expansion", "Renewal"]
_EVENTS = [("login", 70), ("report_viewed", 15), ("export_created", 10), ("invite_sent", 5)]


def _names(rng: random.Random) -> list[str]:
    names = sorted({f"{a} {s}" for a in _PARTS for s in _SUFFIX})
    rng.shuffle(names)
    return names


def generate(seed: int = SEED) -> list[dict[str, Any]]:
    """Every call of the dataset, in time order."""
    rng = random.Random(seed)
    calls: list[dict[str, Any]] = []
    names = _names(rng)
    contacts: list[tuple[str, str, float]] = []  # (user id, account id, activity)
    late_trials = set(rng.sample(range(ACCOUNTS), 24))  # sign up during the month
    for i in range(ACCOUNTS):
        name = names[i]
        account = f"acc-{i + 1:03d}"
        domain = name.lower().replace(" ", "") + ".example"
        trial = i in late_trials
        plan, mrr = _PLANS[0] if trial else rng.choice(_PLANS[1:])
        start = rng.randrange(1, DAYS - 2) * MINUTES_A_DAY + rng.randrange(8 * 60, 18 * 60)
        at = start if trial else -rng.randrange(30, 700) * MINUTES_A_DAY
        health = rng.choice([35, 45, 55, 62, 72, 80, 88, 93]) if not trial else 60
        traits: dict[str, Any] = {
            "name": name,
            "domain": domain,
            "plan": plan,
            "status": "trial" if trial else "paying",
            "mrr": mrr,
            "stage": "Onboarding" if trial else rng.choice(_STAGES[1:3]),
            "health_score": health,
            "seats": rng.choice([5, 10, 25, 50]),
        }
        calls.append({"at": at, "type": "group", "groupId": account, "traits": traits})
        for j in range(rng.choice([2, 3, 3, 4])):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            user = f"{account}-u{j + 1}"
            email = f"{first.lower()}.{last.lower()}@{domain}"
            person = {"email": email, "first_name": first, "last_name": last}
            calls.append(
                {"at": at + j, "type": "identify", "userId": user, "groupId": account,
                 "traits": person}
            )  # fmt: skip
            contacts.append((user, account, rng.uniform(0.2, 2.5) if j == 0 else 0.4))
        _month(rng, calls, account, i, trial, health, start if trial else 0)
    _events(rng, calls, contacts)
    calls.sort(key=lambda c: c["at"])
    for n, call in enumerate(calls):
        call["messageId"] = f"demo-{n + 1:05d}"
    return calls


def _month(
    rng: random.Random,
    calls: list[dict[str, Any]],
    account: str,
    i: int,
    trial: bool,
    health: int,
    begin: int,
) -> None:
    """An account's changes during the month: health moves, stages, conversions."""

    def change(day_from: int, **traits: Any) -> None:
        at = begin + rng.randrange(day_from, DAYS - 1) * MINUTES_A_DAY + rng.randrange(600)
        if at < DAYS * MINUTES_A_DAY:
            calls.append({"at": at, "type": "group", "groupId": account, "traits": traits})

    if trial:
        if rng.random() < 0.4:
            change(7, plan="pro", status="paying", mrr=499, stage="Adoption")
        return
    if health >= 40 and rng.random() < 0.18:
        change(1, health_score=rng.choice([22, 30, 36]))
    elif health < 40 and rng.random() < 0.4:
        change(1, health_score=rng.choice([66, 75]))
    if rng.random() < 0.12:
        change(1, stage="Renewal")


def _events(
    rng: random.Random, calls: list[dict[str, Any]], contacts: list[tuple[str, str, float]]
) -> None:
    kinds = [k for k, _ in _EVENTS]
    weights = [w for _, w in _EVENTS]
    first_seen = {c["groupId"]: c["at"] for c in calls if c["type"] == "group"}
    for user, account, activity in contacts:
        begin = max(first_seen[account] + 60, 0)
        for day in range(DAYS):
            if day * MINUTES_A_DAY < begin - MINUTES_A_DAY or rng.random() > activity / 3:
                continue
            at = day * MINUTES_A_DAY + rng.randrange(7 * 60, 20 * 60)
            if at <= begin:
                continue
            event = rng.choices(kinds, weights)[0]
            props: dict[str, Any] = {}
            if event == "export_created":
                props = {"format": rng.choice(["csv", "csv", "xlsx"]), "rows": rng.randrange(9)}
            calls.append(
                {"at": at, "type": "track", "userId": user, "event": event, "properties": props}
            )
    for user, _account, _ in rng.sample(contacts, 25):  # accounts hitting their seat limit
        at = rng.randrange(2, DAYS - 1) * MINUTES_A_DAY + rng.randrange(9 * 60, 17 * 60)
        calls.append(
            {"at": at, "type": "track", "userId": user, "event": "seat_limit_reached",
             "properties": {"seats": rng.choice([10, 25, 50])}}
        )  # fmt: skip


def main() -> None:
    out = Path(__file__).with_name("lumen.jsonl")
    with out.open("w") as f:
        for call in generate():
            f.write(json.dumps(call, separators=(",", ":")) + "\n")
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
