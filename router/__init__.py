"""sevrouter: Alertmanager and Grafana webhooks in, deduplicated SEV incidents and pages out."""

__version__ = "0.1.0"
