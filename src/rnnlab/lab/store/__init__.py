"""The results store: one SQLite file holding every run, its metrics over steps and its gradient-flow
snapshots (`Store`, in store.py). The rooms: records.py (what a run's row is, statuses, metric names),
schema.py (the tables, the file check), migrations.py (older stores brought up once), writes.py (a run's
result into the tables), claims.py (which runs a sweep takes on), export.py (CSV, integrity check).
"""

from rnnlab.lab.store.records import FINISHED, STATUSES, MetricName, Run, StoreError, met_criterion, outcome
from rnnlab.lab.store.schema import SCHEMA_VERSION, SQLITE_HEADER
from rnnlab.lab.store.store import DEFAULT_PATH, Store

__all__ = [
    "DEFAULT_PATH",
    "FINISHED",
    "SCHEMA_VERSION",
    "SQLITE_HEADER",
    "STATUSES",
    "MetricName",
    "Run",
    "Store",
    "StoreError",
    "met_criterion",
    "outcome",
]
