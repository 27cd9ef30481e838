"""What PostgreSQL spends rewriting sketches, by sketch size and column compression.

An append reads and rewrites the sketch of every hour and declared value it adds persons to.
This makes 159 DataSketches HLL_8 sketches in HLL mode (the rows one append of the benchmark's
flood with two declared dimensions rewrites), stores them in a scratch table, then times
``--rounds`` transactions that each read all of them and upsert them back, as the store does
(binary parameters), for each storage of the column: pglz (PostgreSQL's default), lz4, and
uncompressed (``STORAGE EXTERNAL``). Run:
``.venv/bin/python bench/sketch_writes.py --lg-k 14`` (then ``--lg-k 12``).
"""

from __future__ import annotations

import argparse
import secrets
import time

import datasketches
import psycopg
from psycopg import sql

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
ROWS = 159
STORAGES = {
    "pglz": "ALTER TABLE sketches ALTER COLUMN sketch SET COMPRESSION pglz",
    "lz4": "ALTER TABLE sketches ALTER COLUMN sketch SET COMPRESSION lz4",
    "uncompressed": "ALTER TABLE sketches ALTER COLUMN sketch SET STORAGE EXTERNAL",
}


def sketch(lg_k: int, n: int) -> bytes:
    made = datasketches.hll_sketch(lg_k, datasketches.tgt_hll_type.HLL_8)
    for person in range(20_000):
        made.update(f"person-{n}-{person}")
    return bytes(made.serialize_compact())


def run(arguments: argparse.Namespace) -> None:
    sketches = [sketch(arguments.lg_k, n) for n in range(ROWS)]
    keys = list(range(ROWS))
    name = f"eventcore_sketches_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(f"{ROWS} sketches of lg_k {arguments.lg_k}, {len(sketches[0]):,} bytes each")
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}") as conn:
            conn.autocommit = True
            for storage, statement in STORAGES.items():
                conn.execute("DROP TABLE IF EXISTS sketches")
                conn.execute("CREATE TABLE sketches (k int PRIMARY KEY, n bigint, sketch bytea)")
                conn.execute(statement)
                conn.execute(
                    "INSERT INTO sketches SELECT k, 0, s FROM unnest(%b::int[], %b::bytea[])"
                    " AS x (k, s)",
                    (keys, sketches),
                )
                began = time.perf_counter()
                for _ in range(arguments.rounds):
                    with conn.transaction():
                        rows = conn.execute(
                            "SELECT sketch FROM sketches WHERE k = ANY(%b) ORDER BY k",
                            (keys,),
                            binary=True,
                        ).fetchall()
                        conn.execute(
                            "INSERT INTO sketches SELECT k, 1, s"
                            " FROM unnest(%b::int[], %b::bytea[]) AS x (k, s)"
                            " ON CONFLICT (k) DO UPDATE SET n = sketches.n + 1,"
                            " sketch = excluded.sketch",
                            (keys, [row[0] for row in rows]),
                        )
                elapsed = (time.perf_counter() - began) / arguments.rounds
                print(
                    f"{storage:>12}: {elapsed * 1000:6.1f} ms a round of {ROWS} rows,"
                    f" {elapsed / ROWS * 1e6:5.0f} us a row"
                )
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lg-k", type=int, default=14)
    parser.add_argument("--rounds", type=int, default=50)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
