"""The stores' contract for declared dimensions: values kept beside each event, daily tallies
counted exactly once per inserted event and bounded per day, a breakdown's read of them (totals
per value, sketches of the listed values only), filters on the stored values, a rebuild that
covers events stored before a dimension was declared, and tenant walls."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import msgspec

from eventcore.aggregation import Granularity, bucket_start
from eventcore.defaults import MAX_DIMENSION_VALUE_LENGTH, MAX_DIMENSION_VALUES
from eventcore.dimensions import (
    Kind,
    ValueTotal,
    Where,
    breakdown_of_tallies,
    breakdown_of_totals,
    decode_values,
    encode_values,
    totals_of_tallies,
    values_of,
)
from eventcore.events import Event
from eventcore.persons import estimate
from eventcore.ports import Store
from eventcore.tenancy import Membership, User, Workspace
from tests.contract.implementations import StoreKit
from tests.contract.support import (
    EVERYTHING,
    T0,
    batch,
    event,
    membership,
    project,
    user,
    workspace,
)

START, END = EVERYTHING
DAY = bucket_start(T0, Granularity.DAY)
PATHS = ("plan", "context.page.path")


def shopping(count: int, prefix: str = "s") -> list[Event]:
    """Events over two days: plans pro/free/none, pages, persons, some without either."""
    made = []
    for n in range(count):
        plan = ('"pro"', '"free"', "null", "7")[n % 4]
        page = f'{{"page":{{"path":"/p{n % 3}"}}}}' if n % 5 else '{"page":"flat"}'
        made.append(
            event(
                f"{prefix}{n}",
                ("view", "buy")[n % 2],
                T0 + timedelta(hours=(n * 5) % 40, minutes=n % 60),
                f'{{"plan":{plan},"context":{page}}}'.encode(),
                user_id=f"u{n % 6}" if n % 7 else None,
            )
        )
    return made


def expected(
    events: list[Event], path: str, event_type: str | None = None
) -> Counter[tuple[datetime, Kind, str]]:
    """(day, kind, value) → count, the slow way."""
    tallies: Counter[tuple[datetime, Kind, str]] = Counter()
    for e in events:
        if event_type not in (None, e.type):
            continue
        current = msgspec.json.decode(bytes(e.properties))
        for name in path.split("."):
            current = current.get(name) if isinstance(current, dict) else None
        if isinstance(current, str):
            key = (Kind.VALUE, current)
        elif isinstance(current, bool | int | float):
            key = (Kind.VALUE, msgspec.json.encode(current).decode())
        else:
            key = (Kind.NONE, "")
        tallies[(bucket_start(e.timestamp, Granularity.DAY), *key)] += 1
    return tallies


async def declared_project(store: Store, paths: tuple[str, ...] = PATHS) -> tuple[str, str]:
    ws = workspace()
    await store.create_signup(*_signup(ws))
    made = project(ws.id)
    await store.create_project(made)
    assert await store.set_dimensions(ws.id, made.id, paths) is not None
    return ws.id, made.id


def _signup(ws: Workspace) -> tuple[User, Workspace, Membership]:
    owner = user()
    return owner, ws, membership(ws.id, owner.id)


async def tallied(
    store: Store, ws: str, prj: str, path: str, event_type: str | None = None
) -> Counter[tuple[datetime, Kind, str]]:
    rows = await store.dimension_tallies(ws, prj, path, START, END, event_type)
    return Counter({(row.day, row.kind, row.value): row.count for row in rows})


async def test_declared_dimensions_are_kept_with_the_project(store: Store) -> None:
    ws, prj = await declared_project(store)

    found = await store.get_project(ws, prj)
    assert found is not None
    assert found.dimensions == PATHS
    assert await store.set_dimensions("ws-other", prj, ("plan",)) is None
    changed = await store.set_dimensions(ws, prj, ())
    assert changed is not None
    assert changed.dimensions == ()


async def test_each_inserted_event_is_tallied_once_per_day_value_and_type(store: Store) -> None:
    ws, prj = await declared_project(store)
    events = shopping(80)
    await store.append([batch(ws, prj, *events[:30])])
    await store.append([batch(ws, prj, *events[30:])])
    await store.append([batch(ws, prj, *events)])  # every one a duplicate

    for path in PATHS:
        assert await tallied(store, ws, prj, path) == expected(events, path)
        for kind in ("view", "buy"):
            assert await tallied(store, ws, prj, path, kind) == expected(events, path, kind)


async def test_each_tally_sketches_the_persons_of_its_events(store: Store) -> None:
    ws, prj = await declared_project(store)
    events = shopping(60)
    await store.append([batch(ws, prj, *events)])

    rows = await store.dimension_tallies(ws, prj, "plan", START, END)
    for row in rows:
        persons = {
            e.person
            for e in events
            if e.person is not None
            and bucket_start(e.timestamp, Granularity.DAY) == row.day
            and (Kind.VALUE, decode_values(_values(e)).get("plan") or "") == (row.kind, row.value)
        }
        if row.kind is Kind.VALUE:
            assert (estimate([row.sketch]).users if row.sketch else 0) == len(persons), row


def _values(e: Event) -> str:
    return encode_values(values_of(bytes(e.properties), ("plan",)))


async def test_values_past_the_bound_or_too_long_are_counted_as_other(store: Store) -> None:
    ws, prj = await declared_project(store, ("plan",))
    many = [
        event(f"m{n}", "view", T0, f'{{"plan":"plan-{n:04d}"}}'.encode())
        for n in range(MAX_DIMENSION_VALUES + 30)
    ]
    long = event(
        "long", "view", T0, f'{{"plan":"{"x" * (MAX_DIMENSION_VALUE_LENGTH + 1)}"}}'.encode()
    )
    await store.append([batch(ws, prj, *many[:60])])
    await store.append([batch(ws, prj, *many[60:], long)])

    rows = await store.dimension_tallies(ws, prj, "plan", START, END)
    kept = [row for row in rows if row.kind is Kind.VALUE]
    assert len(kept) == MAX_DIMENSION_VALUES
    assert {row.value for row in kept} >= {f"plan-{n:04d}" for n in range(60)}
    assert sum(row.count for row in rows if row.kind is Kind.OTHER) == 31
    assert sum(row.count for row in rows) == len(many) + 1


def _by_key(totals: list[ValueTotal]) -> dict[tuple[Kind, str], ValueTotal]:
    by_key = {(t.kind, t.value): t for t in totals}
    assert len(by_key) == len(totals), "one total per kind and value"
    return by_key


async def test_totals_sum_the_tallies_and_carry_only_the_listed_values_sketches(
    store: Store,
) -> None:
    ws, prj = await declared_project(store)
    events = shopping(80)
    await store.append([batch(ws, prj, *events[:50])])
    await store.append([batch(ws, prj, *events[50:])])

    for path in PATHS:
        for event_type in (None, "view"):
            tallies = await store.dimension_tallies(ws, prj, path, START, END, event_type)
            summed: Counter[tuple[Kind, str]] = Counter()
            for (_, kind, value), count in expected(events, path, event_type).items():
                summed[kind, value] += count
            for listed in (0, 1, 2, 3, 100):
                totals = await store.dimension_totals(
                    ws, prj, path, START, END, event_type, listed=listed
                )
                found = _by_key(totals)
                assert {key: t.count for key, t in found.items()} == dict(summed)
                assert found == _by_key(totals_of_tallies(tallies, listed))
                assert sum(t.sketches is not None for t in totals) == min(listed, len(summed))
                if listed:
                    assert breakdown_of_totals(
                        prj, path, START, END, totals, listed
                    ) == breakdown_of_tallies(prj, path, START, END, tallies, listed)


async def test_totals_rank_by_count_then_kind_then_value_in_code_point_order(
    store: Store,
) -> None:
    ws, prj = await declared_project(store, ("plan",))
    # Ties everywhere: U+FF5E comes before U+1F600 by code point (and after it in
    # UTF-16); no value (null) ties with the values and comes after them; the too-long value
    # is other, the largest, never listed. "Z" is listed without any person.
    ties = ["b", "a", "Z", "a ", "é", "\U0001f600", "\uff5e", "日本", None]
    made: list[Event] = []
    for n, plan in enumerate(ties):
        text = "null" if plan is None else msgspec.json.encode(plan).decode()
        for day in range(2):
            made.append(
                event(
                    f"t{n}-{day}",
                    "view",
                    T0 + timedelta(days=1 - day, minutes=n),
                    f'{{"plan":{text}}}'.encode(),
                    user_id=None if plan == "Z" else f"u{n}-{day}",
                )
            )
    made += [event(f"top{n}", "view", T0, b'{"plan":"top"}', user_id="ada") for n in range(3)]
    too_long = "x" * (MAX_DIMENSION_VALUE_LENGTH + 1)
    made += [event(f"o{n}", "view", T0, f'{{"plan":"{too_long}"}}'.encode()) for n in range(9)]
    await store.append([batch(ws, prj, *made)])
    order = [(Kind.VALUE, "top")]
    order += [(Kind.VALUE, v) for v in ("Z", "a", "a ", "b", "é", "日本", "\uff5e", "\U0001f600")]
    order += [(Kind.NONE, "")]
    tallies = await store.dimension_tallies(ws, prj, "plan", START, END)

    for listed in range(len(order) + 2):
        found = _by_key(await store.dimension_totals(ws, prj, "plan", START, END, listed=listed))
        assert found[Kind.OTHER, ""] == ValueTotal(Kind.OTHER, "", 9, None)
        assert [key for key in order if found[key].sketches is not None] == order[:listed]
        for key in order[:listed]:
            # Every sketch of the value's tallies, in day order ("Z" had no person: none).
            assert found[key].sketches == [
                t.sketch for t in tallies if (t.kind, t.value) == key and t.sketch is not None
            ]
    z = found[Kind.VALUE, "Z"]
    assert z.count == 2
    assert z.sketches == []
    assert len(found[Kind.VALUE, "a"].sketches or []) == 2


async def test_a_project_without_dimensions_tallies_nothing(store: Store) -> None:
    ws, prj = await declared_project(store, ())
    await store.append([batch(ws, prj, *shopping(20))])

    assert await store.dimension_tallies(ws, prj, "plan", START, END) == []
    found = await store.filtered_events(ws, prj, START, END, None, ())
    assert len(found) == 20
    assert {decode_values(f.values).get("plan") for f in found} == {None}


async def test_filtered_events_match_every_filter_on_the_stored_values(store: Store) -> None:
    ws, prj = await declared_project(store)
    events = shopping(60)
    await store.append([batch(ws, prj, *events)])
    where = (Where("plan", "pro"), Where("context.page.path", "/p1"))

    found = await store.filtered_events(ws, prj, START, END, None, where)

    wanted = {
        e.id
        for e in events
        if b'"plan":"pro"' in bytes(e.properties) and b'"/p1"' in bytes(e.properties)
    }
    assert len(found) == len(wanted) > 0
    assert all(decode_values(f.values)["plan"] == "pro" for f in found)
    numbers = await store.filtered_events(ws, prj, START, END, "buy", (Where("plan", "7"),))
    assert {f.type for f in numbers} <= {"buy"}
    assert len(numbers) == sum(
        1 for e in events if e.type == "buy" and b'"plan":7' in bytes(e.properties)
    )
    assert await store.filtered_events(ws, prj, START, END, None, (Where("plan", "gold"),)) == []
    # With a limit: that many of the matching events, no more.
    limited = await store.filtered_events(ws, prj, START, END, None, (), 7)
    assert len(limited) == 7
    every = await store.filtered_events(ws, prj, START, END, None, ())
    assert len(every) > 7
    assert all(f in every for f in limited)


async def test_person_events_carry_the_stored_values(store: Store) -> None:
    ws, prj = await declared_project(store)
    events = shopping(30)
    await store.append([batch(ws, prj, *events)])

    found = await store.person_events(ws, prj, ["view", "buy"], START, END)

    assert found
    assert all(set(decode_values(f.values)) == set(PATHS) for f in found)


async def test_a_rebuild_covers_events_stored_before_the_declaration(store_kit: StoreKit) -> None:
    store = store_kit.store
    ws, prj = await declared_project(store, ())
    events = shopping(50)
    await store.append([batch(ws, prj, *events)])
    await store.set_dimensions(ws, prj, PATHS)
    assert await store.dimension_tallies(ws, prj, "plan", START, END) == []

    await store.rebuild_counts(ws)

    assert await tallied(store, ws, prj, "plan") == expected(events, "plan")
    pro = await store.filtered_events(ws, prj, START, END, None, (Where("plan", "pro"),))
    assert len(pro) == sum(1 for e in events if b'"plan":"pro"' in bytes(e.properties))


async def test_tallies_and_values_are_walled_off_by_tenant(store: Store) -> None:
    ws, prj = await declared_project(store)
    other_ws, other_prj = await declared_project(store)
    await store.append([batch(ws, prj, *shopping(30, "a"))])
    await store.append([batch(other_ws, other_prj, *shopping(10, "b"))])

    assert await store.dimension_tallies(ws, other_prj, "plan", START, END) == []
    assert await store.dimension_totals(ws, other_prj, "plan", START, END, listed=10) == []
    assert await store.filtered_events(ws, other_prj, START, END, None, ()) == []
    assert sum((await tallied(store, other_ws, other_prj, "plan")).values()) == 10
    totals = await store.dimension_totals(other_ws, other_prj, "plan", START, END, listed=10)
    assert sum(t.count for t in totals) == 10
    assert len(await store.filtered_events(other_ws, other_prj, START, END, None, ())) == 10
