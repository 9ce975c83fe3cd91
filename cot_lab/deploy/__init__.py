"""Notebook 08, deployment: a model registry, a served endpoint, drift monitoring, canary and rollback.

registry   MLflow's model registry on local SQLite, in-process: numbered versions with lineage, aliases
           (champion, challenger), promotion gated on notebook 07's evaluation gate, rollback by moving an alias
serving    FastAPI on uvicorn at 127.0.0.1 in a background thread: generate, score, health, version; canary, shadow;
           every request logged in SQLite
monitor    drift: a token-distribution test and the per-request loss under the champion, alarms calibrated by
           permutation on in-distribution traffic at a stated false-alarm rate; the PSI rule's false alarms

MLflow, FastAPI and uvicorn are the `deploy` extra: each module imports them when it is used, not on import.
"""
from cot_lab.deploy.lineage import DeployExtraMissing, ModelVersion
from cot_lab.deploy.monitor import (Alarm, DriftMonitor, WindowReport, drift_monitor, error_rate, latency_summary, psi,
                                    psi_false_alarm_rate, request_losses)
from cot_lab.deploy.registry import Registry
from cot_lab.deploy.request_log import RequestLog
from cot_lab.deploy.serving import Server, serve

__all__ = ["DeployExtraMissing", "ModelVersion", "Alarm", "DriftMonitor", "WindowReport", "drift_monitor", "error_rate",
           "latency_summary", "psi", "psi_false_alarm_rate", "request_losses", "Registry", "RequestLog", "Server", "serve"]
