"""User management and purchase records with DictDataBase.

Run it with ``.venv/bin/python examples/demo.py``. It works in a fresh temporary folder and
removes it at the end, so it never touches the repository or an existing ``ddb_storage``.
It checks every result it prints and exits with status 1 if one is wrong.
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any, Dict

import dictdatabase as DDB
from dictdatabase import errors

USERS: Dict[str, Dict[str, Any]] = {
    "u1": {"name": "Ana Souza", "age": 34, "country": "PT", "status": "active"},
    "u2": {"name": "Ben Okafor", "age": 17, "country": "NG", "status": "active"},
    "u3": {"name": "Caro Lind", "age": 51, "country": "SE", "status": "active"},
    "u4": {"name": "Dev Patel", "age": 28, "country": "IN", "status": "inactive"},
    "u5": {"name": "Emi Sato", "age": 15, "country": "JP", "status": "active"},
}

PURCHASES: Dict[str, Dict[str, Any]] = {
    "8": {"user": "u1", "item": "keyboard", "total": 89.0, "date": "2024-02-11"},
    "9": {"user": "u3", "item": "monitor", "total": 249.9, "date": "2024-03-02"},
    "10": {"user": "u1", "item": "cable", "total": 9.5, "date": "2023-12-24"},
    "11": {"user": "u4", "item": "desk", "total": 310.0, "date": "2024-01-15"},
}


class DemoError(Exception):
    """A result differed from what the demo expected."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoError(what)


def users_demo() -> None:
    print("== users")
    DDB.at("users").create(USERS)
    print(f"created 'users' with {len(USERS)} users")

    try:
        DDB.at("users").create(USERS)
    except FileExistsError:
        print("creating 'users' again raises FileExistsError, as it should")
    else:
        raise DemoError("a second create() did not raise FileExistsError")

    u3 = DDB.at("users", key="u3").read()
    print(f"read key u3: {u3}")
    check(u3 == USERS["u3"], "key read of u3")
    check(DDB.at("users", key="u9").read() is None, "a missing key reads as None")
    check(DDB.at("users", key="u1").exists(), "u1 exists")
    check(not DDB.at("users", key="u9").exists(), "u9 does not exist")

    with DDB.at("users").session() as (session, users):
        users["u6"] = {"name": "Fay Moreau", "age": 42, "country": "FR", "status": "active"}
        users["u1"]["age"] += 1
        session.write()
    print("full session: added u6 and made u1 one year older")
    check(DDB.at("users", key="u1").read()["age"] == 35, "u1's age after the full session")

    with DDB.at("users", key="u4").session() as (session, user):
        user["status"] = "active"
        user["reactivated"] = True
        session.write()
    print("key session: reactivated u4 (only that key was rewritten)")
    check(DDB.at("users", key="u4").read()["status"] == "active", "u4 after the key session")

    try:
        with DDB.at("users", key="u9").session() as (session, user):
            session.write()
    except KeyError:
        print("a key session on the missing key u9 raises KeyError, as it should")
    else:
        raise DemoError("a key session on a missing key did not raise KeyError")

    adults = DDB.at("users", where=lambda _uid, user: user["age"] >= 18).read()
    print(f"where query, adults: {sorted(adults)}")
    check(sorted(adults) == ["u1", "u3", "u4", "u6"], "where query for adults")

    with DDB.at("users", where=lambda _uid, user: user["age"] < 18).session() as (session, minors):
        for user in minors.values():
            user["status"] = "minor"
        session.write()
    print(f"where session: marked {sorted(minors)} as minors")
    statuses = {uid: user["status"] for uid, user in DDB.at("users").read().items()}
    check(statuses["u2"] == "minor" and statuses["u5"] == "minor", "minors after the where session")
    check(statuses["u1"] == "active", "adults untouched by the where session")

    DDB.at("users", key="u6").delete()
    print("deleted key u6")
    check(not DDB.at("users", key="u6").exists(), "u6 deleted")


def purchases_demo() -> None:
    print("== purchases")
    for purchase_id, purchase in PURCHASES.items():
        DDB.at("purchases", purchase_id).create(purchase)
    print(f"created {len(PURCHASES)} files purchases/<id>")

    everything = DDB.at("purchases", "*").read()
    print(f"read purchases/*: files {sorted(everything, key=int)}")
    check(everything == PURCHASES, "folder read returns {file name: data}")

    recent = DDB.at("purchases", "*", where=lambda _name, p: p["date"] >= "2024-01-01").read()
    print(f"purchases since 2024: {sorted(recent, key=int)}")
    check(sorted(recent, key=int) == ["8", "9", "11"], "folder where query")

    with DDB.at("purchases", "*").session() as (session, purchases):
        for purchase in purchases.values():
            purchase["processed"] = True
        session.write()
    print("folder session: marked every purchase as processed")
    check(all(p["processed"] for p in DDB.at("purchases").read_all().values()), "folder session")

    totals: Dict[str, float] = {}
    for purchase in DDB.at("purchases", "*").read().values():
        totals[purchase["user"]] = round(totals.get(purchase["user"], 0.0) + purchase["total"], 2)
    DDB.at("stats").update({"revenue_by_user": totals, "purchases": len(PURCHASES)})
    print(f"update: stored revenue by user {totals}")
    check(DDB.at("stats", key="revenue_by_user").read() == {"u1": 98.5, "u3": 249.9, "u4": 310.0}, "stats")

    names = {uid: user["name"] for uid, user in DDB.at("users").read().items()}
    for uid, total in sorted(totals.items()):
        print(f"  {names[uid]:<12} spent {total:8.2f}")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ddb_demo_") as storage:
        DDB.config.storage_directory = storage
        print(f"storage directory: {storage} (temporary)")
        try:
            users_demo()
            purchases_demo()
        except (DemoError, errors.DatabaseError) as error:
            print(f"demo failed: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
    print("demo finished: every result was as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
