# hindsight: the daily job and the service in one image.
#   docker build -t hindsight .                                     # engine: duckdb
#   docker build --build-arg ENGINE=spark -t hindsight:spark .      # adds Java 17 and pyspark
#   docker run --rm -v "$PWD:/work" hindsight run            # reads /work/hindsight.yaml
#   docker run --rm -p 8000:8000 -e HINDSIGHT_TOKEN=... hindsight serve --host 0.0.0.0
# Every dependency is pinned by deploy/requirements.lock (and deploy/requirements-spark.lock
# for ENGINE=spark; regenerate both with deploy/lock.sh) and installed before the code is
# copied: a change to the code rebuilds only the last layer.
ARG ENGINE=duckdb

FROM eclipse-temurin:17.0.13_11-jre-jammy AS java

FROM python:3.11.11-slim-bookworm AS duckdb
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 hindsight
WORKDIR /opt/hindsight
COPY deploy/requirements.lock deploy/
# kfp and kfp-kubernetes are in the lock: the Kubeflow steps run kfp's executor in this image
RUN pip install --no-compile --no-deps -r deploy/requirements.lock

# engine: spark runs pyspark's driver in the image (Java 17; the cluster brings its own)
FROM duckdb AS spark
ENV JAVA_HOME=/opt/java/openjdk
ENV PATH="${JAVA_HOME}/bin:${PATH}"
COPY --from=java /opt/java/openjdk /opt/java/openjdk
COPY deploy/requirements-spark.lock deploy/
RUN pip install --no-compile --no-deps -r deploy/requirements-spark.lock && java -version

# the code last: a change to it rebuilds only these layers
# hadolint ignore=DL3006
FROM ${ENGINE} AS image
WORKDIR /opt/hindsight
COPY pyproject.toml README.md ./
COPY hindsight ./hindsight
RUN pip install --no-cache-dir --no-compile --no-deps --no-build-isolation . && pip check
USER 10001
WORKDIR /work
EXPOSE 8000
ENTRYPOINT ["hindsight"]
CMD ["--help"]
