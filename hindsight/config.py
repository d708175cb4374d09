"""One frozen ``Config``, built from ``hindsight.yaml`` and checked at the door.

Nothing below the CLI, the SDK entry point and the service reads settings on its own: they get
a ``Config``. Messages name the file, the key, the value and what was expected.
"""

from __future__ import annotations

import difflib
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from hindsight.errors import ConfigError

DEFAULT_CONFIG_FILE = "hindsight.yaml"
CONFIG_ENV_VAR = "HINDSIGHT_CONFIG"
RESERVED_PREFIX = "_hindsight_"

ColumnName = Annotated[str, Field(min_length=1)]


_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_duration(value: object) -> object:
    """A duration is a whole number and a unit: s, m, h or d (``30s``, ``5m``, ``1h``, ``1d``)."""
    if not isinstance(value, str):
        return value
    found = re.fullmatch(r"\s*(\d+)\s*([dhms])\s*", value)
    if found is None:
        raise ValueError(f"{value!r} is not a duration: write a whole number and a unit "
                         "(s, m, h or d), as 5m, 1h or 1d")
    return timedelta(seconds=int(found[1]) * _UNITS[found[2]])


def duration_text(value: timedelta) -> str:
    """The shortest spelling the config reads back.

    >>> duration_text(timedelta(minutes=90)), duration_text(timedelta(days=1))
    ('90m', '1d')
    """
    seconds = int(value.total_seconds())
    unit = next(u for u, size in _UNITS.items() if seconds % size == 0)
    return f"{seconds // _UNITS[unit]}{unit}"


Duration = Annotated[timedelta, BeforeValidator(parse_duration),
                     PlainSerializer(duration_text, return_type=str)]
SHORTEST_CHECK = timedelta(minutes=5)
DAY = timedelta(days=1)


def _class_keys(value: object) -> object:
    """Each class is read as its identity, as predictions are stored (``1`` and ``1.0`` are the
    class ``1``, ``True`` is ``true``: YAML reads ``1:`` as a number and ``yes:`` as a boolean,
    so quote a class such as ``"007"``); an empty mapping and a class named twice are
    refused."""
    if not isinstance(value, dict):
        return value
    if not value:
        raise ValueError("columns.scores is empty: map each class to its probability column "
                         "(e.g. {approve: p_approve, reject: p_reject}) or leave the key out")
    # the identity rule lives with the store; imported here, when a config is checked
    from hindsight.store.identity import identity_of

    keyed: dict[object, object] = {}
    given: dict[str, object] = {}
    for key, column in value.items():
        if key is None or isinstance(key, (dict, list, tuple)) or not str(key).strip():
            raise ValueError(f"columns.scores: {key!r} is not a class; write each class as it "
                             "appears in the prediction column, e.g. approve: p_approve")
        name = identity_of(str(key))
        if name in given:
            raise ValueError(f"columns.scores maps {given[name]!r} and {key!r}, the same class "
                             f"{name!r} (see \"A value's identity\" in docs/data.md): keep one")
        given[name] = key
        keyed[name] = column
    return keyed


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Columns(_Frozen):
    """Maps hindsight's roles onto the user's column names."""

    id: ColumnName = Field(description="the key that joins predictions to labels")
    timestamp: ColumnName = Field(description="when the prediction was made")
    prediction: ColumnName = Field(description="the model's output")
    label: ColumnName = Field(description="the true value, in label files")
    score: ColumnName | None = Field(default=None, description="the model's confidence")
    scores: Annotated[dict[str, ColumnName] | None, BeforeValidator(_class_keys)] = Field(
        default=None,
        description="a probability column per class, {class: column}: a prediction's score "
                    "is the probability of its predicted class")
    label_timestamp: ColumnName | None = Field(
        default=None, description="when the label arrived; default: the time of ingestion"
    )
    model_version: ColumnName | None = Field(default=None, description="the model version")
    provider: ColumnName | None = Field(default=None, description="the model's provider")
    provider_model: ColumnName | None = Field(
        default=None, description="the provider's model id (an alias or a dated snapshot)")
    serving_variant: ColumnName | None = Field(
        default=None, description="the serving path: route, quantization, cache hit, ...")
    input_hash: ColumnName | None = Field(
        default=None,
        description="a hash of the model's input: the same answer to differing inputs is "
                    "counted per serving path (a stale or repetitive cache)")

    def roles(self) -> dict[str, str]:
        """Role -> column name, for the roles that are mapped (``scores.CLASS`` for each
        class's probability)."""
        named = {role: name for role, name in self.model_dump(exclude={"scores"}).items()
                 if name is not None}
        return named | {f"scores.{c}": name for c, name in (self.scores or {}).items()}

    def has_score(self) -> bool:
        """Whether predictions carry a score (a confidence, or per-class probabilities)."""
        return bool(self.score or self.scores)

    def versions(self) -> list[str]:
        """The mapped columns whose change is a pipeline change."""
        return [name for name in (self.model_version, self.provider, self.provider_model,
                                  self.serving_variant) if name]


class DataSettings(_Frozen):
    """When the feeds themselves alert: predictions or label arrivals far below their usual
    volume for the same weekday."""

    weeks: int = Field(
        default=8, ge=3, description="weeks of history whose same weekday gives a day's usual "
                                     "volume (its median)")
    min_share: float = Field(
        default=0.2, gt=0, lt=1, description="a day below this share of its usual volume (and "
                                             "well outside its spread) is a data alert")


class AlertSettings(_Frozen):
    """How the performance rule decides that a cell dropped."""

    min_effect: float = Field(
        default=0.05, ge=0, le=1, description="smallest drop worth an alert, in metric units"
    )
    alpha: float = Field(
        default=0.001, gt=0, lt=1,
        description="error rate of a run's tests across all segments (see correction)",
    )
    correction: Literal["holm", "bh"] = Field(
        default="holm",
        description="holm: chance of any false alert in a run <= alpha; "
                    "bh: expected share of false alerts among a run's alerts <= alpha",
    )
    baseline_days: int = Field(
        default=7,
        ge=1,
        description="oldest days of the label window pooled as the trailing reference",
    )
    pool_days: int = Field(
        default=14, ge=1,
        description="most days a small segment pools to reach min_samples labelled rows",
    )
    resolve_after_runs: int = Field(
        default=3, ge=1,
        description="consecutive passing runs before an open alert resolves",
    )
    incident_span_days: int = Field(
        default=0, ge=0, le=90,
        description="an alert opening this many days after an overlapping incident was last "
                    "seen joins it (0: only incidents still open)",
    )
    correct_label_delay: bool = Field(
        default=True,
        description="correct young days for labels that arrive later when the model was wrong",
    )
    min_label_coverage: float = Field(
        default=0.5, ge=0, le=1,
        description="share of a day's predictions that must be labelled before it is tested",
    )


class SinkSettings(_Frozen):
    """One place alerts are sent to."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the sink's name, for test-sink")
    type: Literal["slack", "webhook", "alertmanager", "log"] = Field(
        description="slack: a Slack incoming webhook; webhook: a JSON POST; alertmanager: "
                    "Prometheus Alertmanager's API; log: one JSON line per alert in a file")
    url: str | None = Field(default=None, description="where to POST")
    url_env: str | None = Field(
        default=None, description="environment variable holding the URL (keeps secrets out)")
    path: str | None = Field(default=None, description="the log sink's file")

    @model_validator(mode="after")
    def _has_a_destination(self) -> Self:
        """A ``log`` sink needs ``path``; the others need ``url`` or ``url_env``."""
        if self.type == "log":
            if not self.path:
                raise ValueError(f"sinks: {self.name!r} (log) needs a path")
        elif not (self.url or self.url_env):
            raise ValueError(f"sinks: {self.name!r} ({self.type}) needs url or url_env")
        return self


class ServiceSettings(_Frozen):
    """``hindsight serve``: HTTP ingest, the API and /metrics."""

    token_env: str = Field(
        default="HINDSIGHT_TOKEN",
        description="environment variable with the bearer token; unset: loopback only",
    )
    open_reads: bool = Field(default=False, description="serve reads without the token")
    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30,
        description="how long a browser's sign-in (on /signin, with the token) lasts")
    secure_cookie: bool = Field(
        default=False,
        description="mark the sign-in cookie Secure even on plain http (TLS ends at a proxy "
                    "that sends no X-Forwarded-Proto); over https it is Secure anyway")
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024,
                                description="largest request body accepted")
    max_rows: int = Field(default=500_000, ge=1, description="most rows in one request")
    write_wait_seconds: float = Field(
        default=2.0, gt=0, description="how long a write waits for the writer before a 429")
    compact_every_writes: int = Field(
        default=200, ge=0,
        description="merge each day's small files after this many ingest writes, in the "
                    "background; 0: never (run 'hindsight compact' instead)")
    max_decoded_bytes: int = Field(
        default=512 * 1024 * 1024, ge=1024,
        description="most memory one body may decode to (gzip, Parquet, Arrow, JSON), "
                    "checked while decoding")
    max_concurrent_bodies: int = Field(
        default=4, ge=1, description="bodies read and decoded at once; more wait up to "
                                     "write_wait_seconds, then get 503")
    max_connections: int = Field(
        default=512, ge=8, description="open connections and requests at once; more are "
                                       "answered 503 (keep it under the descriptor limit)")
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a connection that has not sent a whole request "
                                        "head within this time is closed")
    idle_timeout_seconds: float = Field(
        default=5.0, gt=0, description="an idle kept-alive connection is closed after this")


class IngestLimits(_Frozen):
    """What one batch may hold, at every entry (HTTP, CLI files, the Python API)."""

    max_columns: int = Field(default=2000, ge=1, description="most columns in one batch")
    max_id_chars: int = Field(default=1024, ge=1, description="longest id, in characters")
    max_json_depth: int = Field(
        default=32, ge=2, description="deepest nesting of a JSON row (rows are flat: "
                                      "checked before parsing)")


class RetentionDays(_Frozen):
    """How many days of each kind of table to keep; unset: keep forever."""

    predictions: int | None = Field(default=None, ge=1, description="days of predictions")
    labels: int | None = Field(default=None, ge=1, description="days of labels, by arrival")
    results: int | None = Field(
        default=None, ge=1, description="days of run results: metrics, alerts, runs, drift")

    @property
    def configured(self) -> bool:
        """Whether any table has a limit (else retention has nothing to do)."""
        return any(days is not None for days in (self.predictions, self.labels, self.results))


class StorageSettings(_Frozen):
    """What the store keeps (``hindsight storage retention``) and where old days go
    (``hindsight storage tier``)."""

    delete_after_days: RetentionDays = Field(
        default=RetentionDays(),
        description="days of each table 'hindsight storage retention' keeps (and the "
                    "service's first compaction of each day)")
    lookup_days: int | None = Field(
        default=31, ge=1,
        description="how far from a batch's own days ingest looks for what is already stored: "
                    "an id re-sent with a timestamp this many days from its first is still "
                    "recognised; null: the whole store (a look-up that grows with its age)")
    hot_days: int | None = Field(
        default=None, ge=1, description="days of predictions and labels kept in the store "
                                        "before 'hindsight storage tier' moves them to cold_store")
    table_format: Literal["parquet", "delta"] = Field(
        default="parquet",
        description="how a new store keeps predictions and labels: Parquet files with "
                    "hindsight's own commit markers (one writer per bucket store), or Delta Lake "
                    "tables that any Delta reader reads as committed and that many writers on "
                    "many machines share (pip install 'hindsight[lake]'; 'hindsight storage "
                    "migrate' turns a store's Parquet tables into Delta tables)")
    cold_store: str | None = Field(
        default=None, min_length=1,
        description="where days older than hot_days go: another disk or mount when the store "
                    "is local, another bucket or prefix when it is an object store")

    @model_validator(mode="after")
    def _tiering_is_whole(self) -> Self:
        """``hot_days`` and ``cold_store`` go together: set both to tier old days, or
        neither."""
        if (self.hot_days is None) != (self.cold_store is None):
            raise ValueError("storage.hot_days and storage.cold_store go together: set both "
                             "to tier old days, or neither")
        return self

    @model_validator(mode="after")
    def _delta_tables_stay_hot(self) -> Self:
        """Delta tables are not tiered: ``table_format: delta`` goes without ``hot_days``
        and ``cold_store`` (retention still deletes old days)."""
        if self.table_format == "delta" and self.cold_store is not None:
            raise ValueError("storage.table_format: delta keeps every day in the store (a "
                             "Delta table is not tiered to a cold store): remove "
                             "storage.hot_days and storage.cold_store, or use "
                             "storage.table_format: parquet")
        return self


class VersionSettings(_Frozen):
    """The versions that are promoted; anything else serving traffic is a pipeline change."""

    pinned: tuple[str, ...] = Field(
        default=(), description="promoted model versions and provider model ids",
    )
    memory_days: int = Field(
        default=90, ge=1,
        description="a run compares today's versions with this many days of history: a "
                    "version unseen for longer that serves again is new (a rollback is a change)")


class SparkSettings(_Frozen):
    """``engine: spark``: where the Spark session runs. ``SPARK_REMOTE`` in the environment
    (Spark Connect) takes precedence over ``master``."""

    master: str = Field(default="local[*]", min_length=1,
                        description="the Spark master URL: local[N], spark://..., yarn, k8s://...")
    conf: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Spark settings, e.g. spark.executor.memory: 8g")


_CPU = r"^[0-9]+(\.[0-9]+)?m?$"
_MEMORY = r"^[0-9]+(\.[0-9]+)?([KMGT]i?)?$"
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def _names_to_mapping(value: object) -> object:
    # ``env: [A, B]`` reads the secret's keys A and B into variables of the same names
    if isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
        return {name: name for name in value}
    return value


class SecretEnv(_Frozen):
    """A Kubernetes secret whose keys become the steps' environment variables."""

    secret: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
                        description="the Kubernetes secret's name (lowercase, digits, - and .)")
    env: Annotated[dict[EnvName, Annotated[str, Field(min_length=1)]],
                   BeforeValidator(_names_to_mapping)] = Field(
        default_factory=dict,
        description="variable: key in the secret (or a list of keys named as the variables); "
                    "empty: every key of the secret, as named (CronJob only)")


class PipelineSettings(_Frozen):
    """``hindsight pipeline``: the image, resources, retries and environment of each step of
    the daily job (Kubeflow steps and the Kubernetes CronJob)."""

    image: str = Field(default="hindsight:0.1.0", min_length=1,
                       description="the image the steps run in (built from the Dockerfile)")
    cpu: str = Field(default="2", pattern=_CPU,
                     description="CPU request of each step, in Kubernetes units (2, 500m)")
    memory: str = Field(default="8Gi", pattern=_MEMORY,
                        description="memory request of each step, in Kubernetes units (8Gi)")
    cpu_limit: str | None = Field(default=None, pattern=_CPU,
                                  description="CPU limit of each step; default: none")
    memory_limit: str | None = Field(
        default=None, pattern=_MEMORY,
        description="memory limit of each step; default: the memory request")
    retries: int = Field(default=2, ge=0, le=10,
                         description="how often a failed step is tried again")
    env: dict[EnvName, str] = Field(
        default_factory=dict, description="plain environment variables of each step, e.g. "
                                          "AWS_ENDPOINT_URL (secrets go under secrets)")
    secrets: tuple[SecretEnv, ...] = Field(
        default=(), description="Kubernetes secrets read into each step's environment: the "
                                "bucket's credentials, the sinks' URLs and tokens")
    store_volume: str | None = Field(
        default=None, pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
        description="a PersistentVolumeClaim mounted at the store's path (a store that is a "
                    "local path; a bucket needs none)")

    @model_validator(mode="after")
    def _each_variable_once(self) -> Self:
        """Each variable is set once: by `env` or by one secret, never by two."""
        seen: dict[str, str] = {name: "pipeline.env" for name in self.env}
        for i, secret in enumerate(self.secrets):
            for name in secret.env:
                if name in seen:
                    raise ValueError(f"pipeline.secrets[{i}] ({secret.secret}) sets {name}, "
                                     f"which {seen[name]} sets too: set each variable once")
                seen[name] = f"pipeline.secrets[{i}] ({secret.secret})"
        return self

    @property
    def memory_limit_or_request(self) -> str:
        """The memory limit, or the request when none is given."""
        return self.memory_limit or self.memory

    def variables(self) -> set[str]:
        """The variables the steps get by name (not those of whole secrets)."""
        return set(self.env) | {name for s in self.secrets for name in s.env}


class DriftSettings(_Frozen):
    """Prediction drift against the reference set, and feature drift to explain it."""

    window_days: int = Field(default=1, ge=1, description="days of predictions scored per run")
    quantile: float = Field(
        default=0.99, gt=0.5, lt=1,
        description="quantile of the bootstrapped baseline noise a score must exceed",
    )
    replicates: int = Field(default=1000, ge=100, description="bootstrap replicates")
    min_samples: int = Field(
        default=1000, ge=10,
        description="predictions a segment needs, today and in the reference, to be compared",
    )
    max_window_days: int = Field(
        default=7, ge=1,
        description="a day with fewer than min_samples predictions widens the daily run's "
                    "window, back day by day up to this many days, until it holds them "
                    "(at most window_days: never widened)",
    )
    min_shift: float = Field(
        default=0.2, ge=0,
        description="smallest Wasserstein shift worth an alert, in reference standard deviations",
    )
    min_share_moved: float = Field(
        default=0.05, ge=0, le=1,
        description="smallest share of predictions changing class worth an alert",
    )
    alert_features: tuple[ColumnName, ...] = Field(
        default=(), description="features whose drift may alert (PSI >= feature_psi_alert)",
    )
    feature_psi_alert: float = Field(
        default=0.25, gt=0, description="PSI of an alert_features feature that alerts",
    )
    every: Duration | None = Field(
        default=None,
        description="how often the service checks prediction drift within a day (5m to 1d, "
                    "a whole number of checks a day); unset: only the daily run checks it",
    )
    window: Duration = Field(
        default=timedelta(hours=1),
        description="the trailing predictions each intra-day check scores (at least 'every'; "
                    "doubled, up to a day, until it holds min_samples)",
    )

    @model_validator(mode="after")
    def _checks_fit_in_a_day(self) -> Self:
        """``every`` is 5m to 1d and fits a day a whole number of times (5m, 10m, 15m, 1h,
        2h, 6h, 1d...); ``window`` is 5m to 1d and at least ``every``."""
        problem = schedule_problem(self.every, self.window)
        if problem:
            raise ValueError(problem)
        return self


def schedule_problem(every: timedelta | None, window: timedelta) -> str | None:
    """What is wrong with intra-day checks every ``every`` over a trailing ``window``."""
    if every is not None:
        if not SHORTEST_CHECK <= every <= DAY or DAY % every:
            return (f"drift.every {duration_text(every)}: checks must come 5m to 1d apart "
                    "and fit a day a whole number of times (as 5m, 10m, 15m, 1h, 2h, 6h or 1d)")
        if window < every:
            return (f"drift.window {duration_text(window)} is shorter than drift.every "
                    f"{duration_text(every)}: predictions between checks would never be "
                    "scored; make the window at least as long")
    if not SHORTEST_CHECK <= window <= DAY:
        return f"drift.window {duration_text(window)}: use 5m to 1d"
    return None


SOURCE_FORMATS = ("delta", "iceberg", "parquet", "jsonl")


class TableSource(_Frozen):
    """A table read in place, where the serving side already writes it, instead of the
    store's own: a Delta table, an Iceberg table (through its catalog) or a prefix of Parquet
    or JSON-lines files. The column mapping applies to it unchanged."""

    format: Literal["delta", "iceberg", "parquet", "jsonl"] = Field(
        description="delta (a Delta Lake table), iceberg (an Iceberg table named in a "
                    "catalog), parquet or jsonl (the files under a prefix, Hive-style "
                    "date partitions or not)")
    path: str | None = Field(
        default=None, min_length=1,
        description="where the table lives: an absolute path or a URL (s3://, gs://, ...); "
                    "for iceberg, left out: the catalog knows")
    table: str | None = Field(
        default=None, min_length=1,
        description="iceberg only: the table's name in the catalog, namespace.name")
    catalog: dict[str, str] | None = Field(
        default=None,
        description="iceberg only: the catalog's properties as pyiceberg takes them, e.g. "
                    "{type: sql, uri: 'sqlite:////data/catalog.db', warehouse: ...}, and its "
                    "name (name:, default 'default': a SQL catalog keeps tables by it)")
    options: dict[str, str] = Field(
        default_factory=dict,
        description="options for the table's reader: deltalake's storage_options or "
                    "pyiceberg's FileIO properties (endpoints, regions); credentials come "
                    "from the environment, never from here")

    @model_validator(mode="after")
    def _names_one_table(self) -> Self:
        """An iceberg source names its ``table`` and ``catalog`` (and no ``path``); any other
        names a ``path`` (and neither ``table`` nor ``catalog``)."""
        if self.format == "iceberg":
            if self.table is None or not self.catalog:
                raise ValueError("an iceberg source names its table (table: namespace.name) "
                                 "and its catalog (catalog: {type: sql, uri: ...})")
            if "." not in self.table:
                raise ValueError(f"table {self.table!r}: write the namespace and the name, "
                                 "as namespace.name")
            if self.path is not None:
                raise ValueError("an iceberg source is found through its catalog: leave "
                                 "out path")
            return self
        if self.path is None:
            raise ValueError(f"a {self.format} source needs a path: the table's directory or "
                             "URL")
        if self.table is not None or self.catalog is not None:
            raise ValueError(f"table and catalog name an iceberg table; a {self.format} "
                             "source has only a path")
        if "://" not in self.path and not Path(self.path).is_absolute():
            raise ValueError(f"path {self.path!r}: give an absolute path or a URL")
        return self

    def describe(self) -> str:
        """The source as messages name it."""
        return f"{self.format} table {self.table or self.path}"


class Config(_Frozen):
    """Everything hindsight needs to know about one monitored model."""

    model: str = Field(min_length=1, description="the monitored model's name")
    store: str = Field(min_length=1, description="where hindsight keeps its tables: a path or URL")
    task: Literal["classification", "regression"] = Field(
        default="classification",
        description="classification: accuracy and macro-F1 against labels (classes are "
                    "values); regression: MAE and RMSE (predictions and labels are numbers)")
    columns: Columns = Field(description="which of your columns plays which role")
    segments: tuple[ColumnName, ...] = Field(
        default=(), description="columns whose values cut the traffic into segments; every "
                                "value and every cross of values is measured and tested")
    features: tuple[ColumnName, ...] | None = Field(
        default=None, description="the model's input columns whose drift is measured; "
                                  "null: every column that has no other role")
    cross_depth: int | None = Field(
        default=None, ge=1, description="how many segments one cell may cross; default: up to 3"
    )
    min_samples: int = Field(
        default=100, ge=1, description="labelled rows a cell needs in a day before it is tested"
    )
    label_window_days: int = Field(
        default=21, ge=1, description="how many prediction days each run re-joins with labels"
    )
    alerts: AlertSettings = Field(default=AlertSettings(),
                                  description="the performance rule and incidents")
    data: DataSettings = Field(default=DataSettings(),
                               description="data alerts: a feed far below its usual volume")
    drift: DriftSettings = Field(default=DriftSettings(),
                                 description="prediction and feature drift")
    versions: VersionSettings = Field(default=VersionSettings(),
                                      description="promoted versions and version history")
    sinks: tuple[SinkSettings, ...] = Field(
        default=(), description="where alerts are sent (each opening and resolution once)")
    service: ServiceSettings = Field(default=ServiceSettings(),
                                     description="hindsight serve: limits and access")
    storage: StorageSettings = Field(default=StorageSettings(),
                                     description="look-ups, retention and tiering of the store")
    ingest: IngestLimits = Field(default=IngestLimits(),
                                 description="what one batch may hold, at every entry")
    engine: Literal["duckdb", "spark"] = Field(
        default="duckdb", description="what runs the daily job's queries: the embedded "
                                      "DuckDB, or Spark (pip install 'hindsight[spark]')")
    spark: SparkSettings = Field(default=SparkSettings(),
                                 description="the Spark session, with engine: spark")
    predictions: TableSource | None = Field(
        default=None,
        description="read the predictions in place from this table (Delta, Iceberg, Parquet "
                    "or JSON lines) instead of the store's own; null: the store's, filled by "
                    "hindsight log and the service")
    labels: TableSource | None = Field(
        default=None,
        description="read the labels in place from this table instead of the store's own; "
                    "null: the store's")
    pipeline: PipelineSettings = Field(
        default=PipelineSettings(), description="the image and resources of 'hindsight "
                                                "pipeline' steps (Kubeflow, CronJob)")
    _source: str = PrivateAttr(default=DEFAULT_CONFIG_FILE)

    @property
    def source(self) -> str:
        """The file this config came from, to name in messages."""
        return self._source

    @model_validator(mode="after")
    def _columns_are_consistent(self) -> Self:
        """- ``columns.score`` and ``columns.scores`` exclude each other; a regression has no
          ``scores``.
        - Each role names its own column, and no segment is a role's column; no segment is
          listed twice.
        - No column name starts with ``_hindsight_`` (reserved).
        - Sink names are unique.
        - ``drift.alert_features`` are among ``features`` (when those are listed).
        - ``alerts.baseline_days`` is shorter than ``label_window_days``.
        - ``storage.cold_store`` is reachable like ``store`` (both paths, or both URLs of one
          scheme) and is neither the store, inside it nor holding it.
        - ``storage.delete_after_days`` keeps predictions and labels longer than
          ``label_window_days + 1`` days (what the daily run joins).
        - ``cross_depth`` is at most the number of segments.
        """
        roles = self.columns.roles()
        if self.columns.scores and (self.columns.score or self.task != "classification"):
            raise ValueError("columns.score and columns.scores both give the score: map one "
                             "(score: one confidence per prediction; scores: a probability "
                             "column per class)" if self.columns.score else
                             "columns.scores maps a probability per class, which a regression "
                             "model has not: leave it out")
        by_name: dict[str, str] = {}
        for role, name in roles.items():
            if name in by_name:
                raise ValueError(
                    f"columns.{role} and columns.{by_name[name]} both name {name!r}: "
                    "each role needs its own column"
                )
            by_name[name] = role
        for i, name in enumerate(self.segments):
            if name in by_name:
                raise ValueError(
                    f"segments[{i}] {name!r} is already columns.{by_name[name]}: "
                    "segment by a column that is not a role"
                )
        if len(set(self.segments)) != len(self.segments):
            raise ValueError("segments lists a column twice")
        for name in [*roles.values(), *self.segments, *(self.features or ())]:
            if name.startswith(RESERVED_PREFIX):
                raise ValueError(f"column {name!r}: names starting with {RESERVED_PREFIX!r} are "
                                 "reserved for hindsight; rename the column")
        names = [s.name for s in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError("sinks: two sinks share a name; give each its own")
        unknown = [f for f in self.drift.alert_features
                   if self.features is not None and f not in self.features]
        if unknown:
            raise ValueError(f"drift.alert_features names {unknown[0]!r}, which is not in "
                             "features: add it there or remove it here")
        if self.alerts.baseline_days >= self.label_window_days:
            raise ValueError(
                f"alerts.baseline_days ({self.alerts.baseline_days}) must be shorter than "
                f"label_window_days ({self.label_window_days}): the rest of the window is tested"
            )
        cold = self.storage.cold_store
        if cold is not None:
            problem = cold_store_problem(self.store, cold)
            if problem is not None:
                raise ValueError(problem)
        keep = self.storage.delete_after_days
        for kind in ("predictions", "labels"):
            days = getattr(keep, kind)
            # a run joins label_window_days of predictions with labels from a day earlier
            if days is not None and days <= self.label_window_days + 1:
                raise ValueError(
                    f"storage.delete_after_days.{kind} is {days}: the daily run needs "
                    f"label_window_days + 1 = {self.label_window_days + 1} days of {kind}; "
                    "keep them longer")
        if self.cross_depth is not None and self.cross_depth > max(len(self.segments), 1):
            raise ValueError(
                f"cross_depth is {self.cross_depth} but only {len(self.segments)} segments are "
                "listed: lower cross_depth or list more segments"
            )
        return self

    @property
    def effective_cross_depth(self) -> int:
        """How many segments one cell crosses at most."""
        return self.cross_depth if self.cross_depth is not None else min(len(self.segments), 3)


def resolve_config_path(path: str | Path | None = None) -> Path:
    """The config file to read: the argument, else $HINDSIGHT_CONFIG, else ./hindsight.yaml."""
    chosen = path if path is not None else os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_FILE
    return Path(chosen)


def load_config(path: str | Path | None = None, model: str | None = None) -> Config:
    """Read and check a config file; relative paths are taken relative to the file. A
    workspace file (``models:``) gives the config of ``model``, which may be left out when
    it holds one model (see ``hindsight.workspace``)."""
    from hindsight.workspace import load_workspace

    return load_workspace(path).config(model)


def cold_store_problem(store: str, cold: str) -> str | None:
    """Why ``cold`` cannot be the cold store of ``store``, or None. Tiering writes and sweeps
    the cold store: inside the store (or holding it) its files would be the store's own.

    >>> cold_store_problem("/data/hot", "/data/hot/cold") is not None
    True
    >>> cold_store_problem("s3://b/hot", "s3://b/cold") is None
    True
    """
    if _scheme(cold) != _scheme(store):
        return (f"storage.cold_store {cold!r} and store {store!r} are on different kinds "
                "of storage: the cold store must be reachable the same way as the store (both "
                "local paths, or both s3:// URLs with the same credentials)")
    if not _scheme(store) and Path(store).is_absolute() != Path(cold).is_absolute():
        return None  # a relative path: load_config checks it once resolved
    hot, other = _normalized(store), _normalized(cold)
    if hot == other or other.startswith(f"{hot}/") or hot.startswith(f"{other}/"):
        return (f"storage.cold_store {cold!r} is the store {store!r}, inside it or holds it: "
                "name a location apart from the store (another disk, bucket or prefix)")
    return None


def _normalized(location: str) -> str:
    if _scheme(location):
        scheme, _, rest = location.partition("://")
        return f"{scheme.lower()}://{rest.strip('/')}"
    return os.path.normpath(location)


def _scheme(location: str) -> str:
    """``s3``, ``gs``... for a URL; empty for a local path."""
    scheme, separator, _ = location.partition("://")
    return scheme.lower() if separator else ""


def parse_config(raw: dict[str, Any], source: str = DEFAULT_CONFIG_FILE) -> Config:
    """Build a ``Config`` from a mapping; errors name ``source`` and the key.

    >>> columns = {"id": "i", "timestamp": "t", "prediction": "p", "label": "y"}
    >>> parse_config({"model": "m", "store": "/tmp/s", "columns": columns}).task
    'classification'
    """
    try:
        config = Config.model_validate(_lists_to_tuples(raw))
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(err, source) for err in exc.errors())) from exc
    config._source = source
    return config


def _lists_to_tuples(value: Any) -> Any:
    # YAML gives lists; the frozen model stores tuples (strict mode accepts no coercion).
    if isinstance(value, dict):
        return {k: _lists_to_tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_lists_to_tuples(v) for v in value)
    return value


def _describe(err: Any, source: str) -> str:
    loc = [str(part) for part in err["loc"]]
    key = ".".join(loc) or "(top level)"
    kind = err["type"]
    if kind == "missing":
        return f"{source}: {key} is missing{_why(loc)}"
    if kind == "extra_forbidden":
        return f"{source}: unknown key {loc[-1]!r}{_did_you_mean(loc)}"
    if kind == "value_error":
        return f"{source}: {err['msg'].removeprefix('Value error, ')}"
    return f"{source}: {key}: {err['msg']} (got {err.get('input')!r}){_why(loc)}"


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Config
    for part in loc[:-1]:
        field = model.model_fields.get(part) if model else None
        annotation = field.annotation if field else None
        model = annotation if isinstance(annotation, type) and issubclass(
            annotation, BaseModel) else None
    return model


def _why(loc: list[str]) -> str:
    model = _model_at(loc)
    field = model.model_fields.get(loc[-1]) if model and loc else None
    return f" ({field.description})" if field and field.description else ""


def _did_you_mean(loc: list[str]) -> str:
    model = _model_at(loc)
    known = list(model.model_fields) if model else []
    close = difflib.get_close_matches(loc[-1], known, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known keys: {', '.join(known)})" if known else ""


def feature_columns(config: Config, stored: list[str]) -> list[str]:
    """The configured features, or every stored column that has no other role."""
    if config.features is not None:
        return list(config.features)
    taken = set(config.columns.roles().values()) | set(config.segments)
    return [c for c in stored if c not in taken and not c.startswith(RESERVED_PREFIX)]
