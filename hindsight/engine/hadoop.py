"""How Spark (Hadoop's filesystem connectors) names and reaches the store.

pyarrow names a bucket's files ``bucket/key`` and an HDFS store's ``/path``; Hadoop needs the
whole URL of its own connector: ``s3a://`` for S3, ``gs://`` for GCS, the Azure container
*with its account* (``abfss://container@account.dfs.core.windows.net/...``), and the name
node of HDFS. The S3 connector takes its endpoint, addressing and credentials from the same
environment as the store's own reads (``AWS_ENDPOINT_URL``, the AWS credentials chain).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from hindsight.errors import ConfigError

# The AWS SDK v2 chain hadoop-aws 3.4+ builds on: environment, web identity (Kubernetes
# service accounts), profiles, containers and instance roles, as boto3 and pyarrow look.
CREDENTIALS_CHAIN = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"
# What each connector needs on the driver's and the executors' classpath
CONNECTORS = {
    "s3a": ("org.apache.hadoop.fs.s3a.S3AFileSystem",
            "Hadoop's S3 connector: the hadoop-aws jar of the cluster's Hadoop version and "
            "the AWS SDK bundle it depends on (e.g. spark.jars.packages: "
            "org.apache.hadoop:hadoop-aws:<Hadoop version>)"),
    "gs": ("com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem",
           "Google's Cloud Storage connector for Hadoop (the gcs-connector shaded jar, "
           "com.google.cloud.bigdataoss:gcs-connector)"),
    "abfs": ("org.apache.hadoop.fs.azurebfs.AzureBlobFileSystem",
             "Hadoop's Azure connector: the hadoop-azure jar of the cluster's Hadoop version"),
}
CONNECTORS["abfss"] = CONNECTORS["abfs"]


@dataclass(frozen=True, slots=True)
class HadoopStore:
    """The store as Hadoop sees it: ``scheme`` ('' for a local directory) and what is put in
    front of a pyarrow path to make Hadoop's URL of it."""

    scheme: str
    location: str

    @classmethod
    def of(cls, location: str) -> HadoopStore:
        """From the configured ``store:``.

        >>> HadoopStore.of("s3://bucket/prefix").path("bucket/prefix/predictions/a.parquet")
        's3a://bucket/prefix/predictions/a.parquet'
        >>> HadoopStore.of("abfss://c@acct.dfs.core.windows.net/p").path("c/p/x.parquet")
        'abfss://c@acct.dfs.core.windows.net/p/x.parquet'
        """
        if "://" not in location:
            return cls("", location)
        parts = urlsplit(location)
        scheme = parts.scheme.lower()
        if scheme in ("s3", "s3a"):
            return cls("s3a", location)
        if scheme in ("gs", "gcs"):
            return cls("gs", location)
        if scheme in ("abfs", "abfss"):
            if "@" not in parts.netloc:
                raise ConfigError(
                    f"store {location!r}: Spark reads Azure through Hadoop, which needs the "
                    "storage account: write the store as "
                    f"{scheme}://<container>@<account>.dfs.core.windows.net/<path>")
            return cls(scheme, location)
        if scheme in ("hdfs", "viewfs"):
            return cls(scheme, location)
        raise ConfigError(f"store {location!r}: engine: spark reads local directories, "
                          "s3://, gs://, abfss:// and hdfs:// stores")

    def path(self, path: str) -> str:
        """Hadoop's URL of a file pyarrow names ``path``."""
        if not self.scheme:
            return path
        parts = urlsplit(self.location)
        if self.scheme in ("s3a", "gs"):  # pyarrow: bucket/key
            return f"{self.scheme}://{path.lstrip('/')}"
        if self.scheme in ("abfs", "abfss"):  # pyarrow: container/path; the account is ours
            host = parts.netloc.split("@", 1)[1]
            container, _, rest = path.lstrip("/").partition("/")
            return f"{self.scheme}://{container}@{host}/{rest}"
        return f"{self.scheme}://{parts.netloc}/{path.lstrip('/')}"  # HDFS: the name node's

    def settings(self, environ: Mapping[str, str]) -> dict[str, str]:
        """Spark settings the store needs from the environment (the config's spark.conf
        overrides them): for S3, the endpoint, path-style addressing with an endpoint of
        one's own (MinIO, Ceph, a local S3 API), the region and the credentials chain.

        >>> HadoopStore.of("s3://b/p").settings({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})
        ... # doctest: +NORMALIZE_WHITESPACE
        {'spark.hadoop.fs.s3a.aws.credentials.provider':
         'software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider',
         'spark.hadoop.fs.s3a.endpoint': 'http://127.0.0.1:9000',
         'spark.hadoop.fs.s3a.path.style.access': 'true'}
        """
        if self.scheme != "s3a":
            return {}
        found = {"spark.hadoop.fs.s3a.aws.credentials.provider": CREDENTIALS_CHAIN}
        endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            found["spark.hadoop.fs.s3a.endpoint"] = endpoint
            found["spark.hadoop.fs.s3a.path.style.access"] = "true"
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if region:
            found["spark.hadoop.fs.s3a.endpoint.region"] = region
        return found

    def missing_connector(self, error: str) -> str | None:
        """What the cluster needs, if ``error`` says the store's connector is not there."""
        connector = CONNECTORS.get(self.scheme)
        if connector is None:
            return None
        name, needs = connector
        short = name.rsplit(".", 1)[-1]
        if f"{short} not found" in error or f'No FileSystem for scheme "{self.scheme}"' in error:
            return (f"Spark has no connector for the store {self.location} ({self.scheme}://, "
                    f"{short} not found): the cluster needs {needs}")
        return None
