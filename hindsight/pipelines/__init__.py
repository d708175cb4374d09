"""Exports of the daily job to schedulers: Kubeflow Pipelines, cron, Kubernetes CronJobs."""
