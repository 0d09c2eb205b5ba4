"""The track store: schema, writes and reads, on SQLite or PostgreSQL. No SQL lives outside this package.

One module per thing kept (``tests/unit/test_store_owns_sql.py`` fails on SQL anywhere else):

* ``base``: ``Store(location)``, the contract: a path opens ``sqlite.SqliteStore`` (one file, WAL), a
  ``postgresql://`` URL ``postgres.PostgresStore`` (a psycopg pool, outage backoff, the single-writer
  lock); migration on open, transactions, snapshots. Every statement runs through it.
* ``dialect``: SQLite's SQL as PostgreSQL runs it (placeholders, scalar min/max, DDL type words).
* ``schema``: the DDL of every version and the ordered ``MIGRATIONS`` (one list for both backends);
  the ``V_*`` version constants.
* ``configured``: the store a configuration names (``--store``, ``store.url``, ``store.path``).
* ``copy``: ``xreid store copy``, every table from one store into a new one, counts verified.
* ``tracks``: camera-side and matcher-side track writes, the one track lister (``list_tracks``),
  thumbnails, embeddings and galleries.
* ``identities``: identities, link decisions, merges, and ``find_root``, the one merge resolver.
* ``summaries``: identities seen through their tracks (summaries, pages, one identity's detail).
* ``cameras``: camera source status and the camera overview.
* ``calibration``: the matcher's free evidence and each modality pair's threshold.
* ``modality_events``: day/night switches and the modality timeline of a camera.
* ``crops``: person crops kept beside the store (or in ``store.crops_dir``) for site adaptation (files).
* ``erasure``: the one delete cascade, the forget queue and its tombstones, forgotten-track hashes,
  the writer lease (schema v6); ``retention``: what a retention sweep may delete.
* ``audit``: the API's query audit log, apart from the store (``<stem>.audit.sqlite``; PostgreSQL: the
  ``xreid_audit`` schema of the same database).
* ``outputs``: a replay's report files cleaned of erased tracks and identities (files).

Callers pass the ``Store`` to named functions (``tracks.list_tracks(store, TrackFilter(...))``) and get
dataclasses or plain dicts back; they never see SQL. The store knows none of its callers: the matcher
translates its own types into the rows here (``pipeline/matcher/records.py``).
"""
