# hindsight: the daily job and the service in one image.
#   docker build -t hindsight .
#   docker run --rm -v "$PWD:/work" hindsight run            # reads /work/hindsight.yaml
#   docker run --rm -p 8000:8000 -e HINDSIGHT_TOKEN=... hindsight serve --host 0.0.0.0
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 hindsight

WORKDIR /opt/hindsight
COPY pyproject.toml README.md ./
COPY hindsight ./hindsight
# kubeflow: the pipeline's steps run kfp's executor in this image
RUN pip install --no-compile . "kfp==2.17.3"

USER 10001
WORKDIR /work
EXPOSE 8000
ENTRYPOINT ["hindsight"]
CMD ["--help"]
