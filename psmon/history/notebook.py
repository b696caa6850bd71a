"""The history from Python: `psmon.History.open(...)`, named questions as pandas DataFrames.

Analysts work in notebooks; this is the same history and the same named questions as `psmon
query`, with the same safety, as DataFrames:

    import psmon
    with psmon.History.open("psmon-data") as h:         # a data directory, chdb:///..., or http://...
        df = h.rates("online_submission", by="month", period="2026")
        df.pivot(index="period", columns="province", values="ratio")

Design decisions:
- One door for every source. A data directory (of `psmon up` or `psmon sink`), a `chdb:///` DSN
  or a ClickHouse URL; a directory held by a running `psmon up` is read through its query
  endpoint, like the CLI does (`connect(..., read_only=True)`).
- Opening never creates anything: a path that holds no psmon history is a `NoHistoryError` that
  names the path, not an empty database created under the notebook's working directory.
- Answers are the `ResultTable`s of `psmon.history.queries.History`, converted: the columns and
  rows as they are (datetimes in UTC, ratios 0-1, missing values as NaN/None), and the table's
  title and notes in `DataFrame.attrs` (`df.attrs["notes"]` tells what the 766 points leave out).
- Arguments are what people type in the CLI: metric names in either spelling, periods as text
  (`2026`, `2026-Q3`, `2026-08`, `2026-08-15`).
"""

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from psmon.errors import PsmonError
from psmon.history.periods import Grain, Period
from psmon.history.queries import History as _Questions
from psmon.history.queries import metric_name
from psmon.history.tables import ResultTable
from psmon.sinks.clickhouse.client import Client, connect

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["History", "NoHistoryError"]


class NoHistoryError(PsmonError):
    """The source holds no psmon history (no directory, or no migrated database)."""


def _dsn(source: str | Path) -> str:
    text = str(source)
    if text.startswith(("chdb://", "http://", "https://")):
        dsn = text
    else:
        # a data directory (holding `clickhouse/`) or the chDB directory itself
        path = Path(text).expanduser().resolve()
        dsn = f"chdb://{path / 'clickhouse' if (path / 'clickhouse').is_dir() else path}"
    if dsn.startswith("chdb://") and not Path(dsn.removeprefix("chdb://")).is_dir():
        raise NoHistoryError(f"no psmon history at {dsn.removeprefix('chdb://')} (give a psmon data directory)")
    return dsn


def _frame(table: ResultTable) -> "pd.DataFrame":
    import pandas as pd

    df = pd.DataFrame.from_records(table.rows, columns=table.columns)
    df.attrs.update(title=table.title, notes=list(table.notes))
    return df


class History:
    """Named questions over one psmon history, answered as pandas DataFrames (module docstring)."""

    def __init__(self, client: Client, *, database: str = "psmon", owns_client: bool = False):
        self._client = client
        self._owns = owns_client
        self._q = _Questions(client, database=database)
        self._q.check_schema()

    @classmethod
    def open(cls, source: str | Path, *, database: str = "psmon") -> Self:
        """Open `source` read-only: a data directory, a `chdb:///` DSN or a ClickHouse URL."""
        client = connect(_dsn(source), read_only=True)
        try:
            return cls(client, database=database, owns_client=True)
        except PsmonError as exc:
            client.close()
            raise NoHistoryError(f"no psmon history in {source} (database {database}): {exc}") from exc
        except BaseException:
            client.close()
            raise

    def close(self) -> None:
        """Release the connection; for an embedded directory, this lets another process open it."""
        if self._owns:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # -- the named questions of `psmon query` ----------------------------------------------------
    def rates(
        self,
        metric: str,
        *,
        by: Grain = "month",
        period: str,
        provinces: list[str] | None = None,
        historical_codes: bool = False,
    ) -> "pd.DataFrame":
        """One metric per province and `by` period within `period`: numerator, denominator, ratio."""
        return _frame(
            self._q.rates(
                metric_name(metric),
                by=by,
                period=Period.parse(period),
                provinces=provinces,
                historical_codes=historical_codes,
            )
        )

    def rank(self, metric: str, *, period: str, historical_codes: bool = False) -> "pd.DataFrame":
        """Provinces ordered by one metric over `period` (missing ratios last)."""
        return _frame(self._q.rank(metric_name(metric), period=Period.parse(period), historical_codes=historical_codes))

    def below(self, metric: str, *, threshold: float, by: Grain = "month", period: str) -> "pd.DataFrame":
        """The (period, province) pairs whose ratio is under `threshold` (0-1)."""
        return _frame(self._q.below(metric_name(metric), threshold=threshold, by=by, period=Period.parse(period)))

    def index766(self, *, period: str) -> "pd.DataFrame":
        """Computable Decision 766 points per province, ranked; what is left out is in `attrs["notes"]`."""
        return _frame(self._q.index766(period=Period.parse(period)))

    def sql(self, statement: str) -> "pd.DataFrame":
        """Any statement that only reads (the guard of `psmon query --sql`)."""
        return _frame(self._q.raw_sql(statement))
