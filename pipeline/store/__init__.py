"""The track store: schema, writes and reads. No SQL lives outside this package.

One module per thing kept (``tests/test_store_owns_sql.py`` fails on SQL anywhere else):

* ``schema``: the DDL of every version and the ordered ``MIGRATIONS``; the ``V_*`` version constants.
* ``sqlite``: ``Store``, the connection (WAL, pragmas, migration on open, transactions, snapshots);
  every statement runs through it, so a PostgreSQL backend plugs in there.
* ``tracks``: camera-side and matcher-side track writes, the one track lister (``list_tracks``),
  thumbnails, embeddings and galleries.
* ``identities``: identities, link decisions, merges, and ``find_root``, the one merge resolver.
* ``summaries``: identities seen through their tracks (summaries, pages, one identity's detail).
* ``cameras``: camera source status and the camera overview.
* ``calibration``: the matcher's free evidence and each modality pair's threshold.
* ``modality_events``: day/night switches and the modality timeline of a camera.
* ``crops``: person crops kept beside the store for site adaptation (files, not SQL).

Callers pass the ``Store`` to named functions (``tracks.list_tracks(store, TrackFilter(...))``) and get
dataclasses or plain dicts back; they never see SQL. The store knows none of its callers: the matcher
translates its own types into the rows here (``pipeline/matcher/records.py``).
"""
