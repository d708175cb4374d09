"""How Spark names and reaches each kind of store: the generated paths and settings."""

from __future__ import annotations

from typing import Any

import pytest

from hindsight.engine.hadoop import CREDENTIALS_CHAIN, HadoopStore
from hindsight.errors import ConfigError


@pytest.mark.parametrize(("store", "pyarrow_path", "hadoop"), [
    ("/data/store", "/data/store/predictions/dt=2026-01-01/a.parquet",
     "/data/store/predictions/dt=2026-01-01/a.parquet"),
    ("s3://bucket/prefix", "bucket/prefix/predictions/dt=2026-01-01/a.parquet",
     "s3a://bucket/prefix/predictions/dt=2026-01-01/a.parquet"),
    ("gs://bucket/prefix", "bucket/prefix/labels/a.parquet",
     "gs://bucket/prefix/labels/a.parquet"),
    ("abfss://models@lake.dfs.core.windows.net/hindsight", "models/hindsight/x/a.parquet",
     "abfss://models@lake.dfs.core.windows.net/hindsight/x/a.parquet"),
    ("hdfs://namenode:8020/warehouse/hindsight", "/warehouse/hindsight/x/a.parquet",
     "hdfs://namenode:8020/warehouse/hindsight/x/a.parquet"),
], ids=["local", "s3", "gcs", "azure", "hdfs"])
def test_each_store_kind_is_named_by_its_hadoop_connector(
    store: str, pyarrow_path: str, hadoop: str,
) -> None:
    """S3 through s3a, GCS as gs:// (Hadoop's connector, not gcs://), Azure with its account,
    HDFS with its name node."""
    assert HadoopStore.of(store).path(pyarrow_path) == hadoop


def test_an_azure_store_without_its_account_is_refused_with_the_form_spark_needs() -> None:
    with pytest.raises(ConfigError, match=r"abfss://<container>@<account>\.dfs"):
        HadoopStore.of("abfss://models/hindsight")


def test_s3_settings_come_from_the_environment_and_use_the_credentials_chain() -> None:
    environ = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "eu-central-2",
               "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret"}
    found = HadoopStore.of("s3://bucket/prefix").settings(environ)
    assert found == {
        "spark.hadoop.fs.s3a.aws.credentials.provider": CREDENTIALS_CHAIN,
        "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9000",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.endpoint.region": "eu-central-2",
    }
    assert not any("secret" in v for v in found.values())  # the chain reads them, not us
    # AWS's own endpoint: virtual-hosted addressing, as S3A defaults to
    assert HadoopStore.of("s3://b/p").settings({}) == {
        "spark.hadoop.fs.s3a.aws.credentials.provider": CREDENTIALS_CHAIN}
    assert HadoopStore.of("gs://b/p").settings(environ) == {}


@pytest.mark.parametrize(("store", "error", "named"), [
    ("s3://b/p", "java.lang.ClassNotFoundException: Class "
     "org.apache.hadoop.fs.s3a.S3AFileSystem not found", "hadoop-aws"),
    ("gs://b/p", 'No FileSystem for scheme "gs"', "gcs-connector"),
    ("abfss://c@a.dfs.core.windows.net/p", "AzureBlobFileSystem not found", "hadoop-azure"),
], ids=["s3", "gcs", "azure"])
def test_a_missing_connector_names_what_the_cluster_needs(
    store: str, error: str, named: str,
) -> None:
    message = HadoopStore.of(store).missing_connector(error)
    assert message is not None and named in message
    assert HadoopStore.of(store).missing_connector("Path does not exist") is None


def _config(**spark: Any) -> Any:
    from hindsight.config import parse_config

    return parse_config({"model": "m", "store": "s3://bucket/prefix", "engine": "spark",
                         "columns": {"id": "i", "timestamp": "t", "prediction": "p",
                                     "label": "y"}, "spark": spark})


def test_a_session_gets_the_stores_settings_and_the_configs_own_over_them() -> None:
    from hindsight.engine.spark import settings

    config = _config(master="local[2]",
                     conf={"spark.hadoop.fs.s3a.path.style.access": False})
    found = settings(config, {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})
    assert found["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert found["spark.hadoop.fs.s3a.path.style.access"] == "false"  # the config's
    assert found["spark.driver.bindAddress"] == "127.0.0.1"  # a local master


def test_a_spark_connect_session_gets_no_local_defaults() -> None:
    """The server owns the session: no master, no driver address, no UI switch, no Hadoop
    settings (a client may not set them: each would be a warning); query settings only."""
    from hindsight.engine.spark import settings

    found = settings(_config(conf={"spark.sql.shuffle.partitions": 64}),
                     {"SPARK_REMOTE": "sc://spark:15002",
                      "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})
    assert found == {"spark.sql.session.timeZone": "UTC",
                     "spark.sql.shuffle.partitions": "64",
                     "spark.sql.parquet.mergeSchema": "true"}


def test_spark_remote_without_the_connect_client_is_a_clear_error() -> None:
    import importlib.util

    from hindsight.engine.spark import session

    if importlib.util.find_spec("grpc") is not None:
        pytest.skip("the Connect client is installed here")
    with pytest.raises(ConfigError, match=r"pip install 'hindsight\[connect\]'"):
        session(_config(), {"SPARK_REMOTE": "sc://127.0.0.1:15002"})


def test_an_hdfs_store_this_process_cannot_reach_says_what_the_driver_needs() -> None:
    """The driver lists and writes the store itself: without Hadoop's client library it says
    which three settings give it one, instead of a page of failed library loads."""
    import os

    from hindsight.errors import StoreError
    from hindsight.store.partitions import Store

    if os.environ.get("ARROW_LIBHDFS_DIR"):
        pytest.skip("a Hadoop client is configured here")
    with pytest.raises(StoreError) as raised:
        Store.open("hdfs://namenode:8020/warehouse/hindsight")
    message = str(raised.value)
    assert all(name in message for name in ("JAVA_HOME", "ARROW_LIBHDFS_DIR", "CLASSPATH"))
    assert len(message) < 500


def test_a_table_read_in_place_from_s3_gets_the_s3_settings_beside_a_local_store(
        tmp_path: Any) -> None:
    from hindsight.config import parse_config
    from hindsight.engine.spark import settings

    raw = {"model": "m", "store": str(tmp_path), "engine": "spark",
           "columns": {"id": "i", "timestamp": "t", "prediction": "p", "label": "y"},
           "spark": {"master": "local[2]"}}
    environ = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}
    assert "spark.hadoop.fs.s3a.endpoint" not in settings(parse_config(raw), environ)
    found = settings(parse_config({**raw, "predictions": {
        "format": "delta", "path": "s3://lake/serving/predictions"}}), environ)
    assert found["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert found["spark.hadoop.fs.s3a.aws.credentials.provider"] == CREDENTIALS_CHAIN
