"""The HTTP service: ingest, the alert API and Prometheus metrics (``hindsight serve``)."""
