"""Rule sets for tests, written to a temporary directory."""

from __future__ import annotations

from pathlib import Path

import yaml

TOKEN = "test-webhook-token"
HMAC_SECRET = "my-hmac-secret"
ALICE_TOKEN = "alice-api-token"
BOB_TOKEN = "bob-api-token"
PAGERDUTY_WEBHOOK_SECRET = "pd-webhook-secret"


def write_rules(directory: Path, *, page_url_env: str = "TEST_PAGE_URL") -> Path:
    """A rule set paging a webhook channel (URL from `page_url_env`) for SEV1/SEV2."""
    directory.mkdir(parents=True, exist_ok=True)
    documents = {
        "integrations.yaml": {
            "integrations": [
                {
                    "name": "alertmanager",
                    "type": "alertmanager",
                    "auth": {"bearer": {"env": "TEST_WEBHOOK_TOKEN"}},
                },
                {
                    "name": "grafana",
                    "type": "grafana",
                    "auth": {
                        "hmac": {
                            "secret": {"env": "TEST_HMAC_SECRET"},
                            "timestamp_header": "X-Grafana-Alerting-Timestamp",
                        }
                    },
                },
                {
                    "name": "basic",
                    "type": "alertmanager",
                    "auth": {
                        "basic": {"username": "am", "password": {"env": "TEST_WEBHOOK_TOKEN"}}
                    },
                },
                {"name": "open", "type": "grafana", "auth": {"none": True}},
            ]
        },
        "severities.yaml": {
            "severities": {
                "SEV1": {"response_time": "0s", "update_every": "15m", "paging": "page"},
                "SEV2": {"response_time": "15m", "update_every": "30m", "paging": "page"},
                "SEV3": {"response_time": "1h", "update_every": "1h", "paging": "notify_then_page"},
                "SEV4": {"response_time": "next_business_day", "paging": "notify_business_hours"},
            },
            "incidents": {"flap_window": "30m", "retention": "7d"},
        },
        "teams.yaml": {
            "channels": [
                {
                    "name": "pager",
                    "type": "webhook",
                    "url": {"env": page_url_env},
                    "signing_secret": {"env": "TEST_HMAC_SECRET"},
                    "timeout": "2s",
                },
                {
                    "name": "backup",
                    "type": "webhook",
                    "url": {"env": "TEST_BACKUP_URL"},
                    "timeout": "2s",
                },
                {"name": "team-log", "type": "log"},
            ],
            "people": [
                {
                    "name": "alice",
                    "contacts": [{"channel": "backup", "address": "alice@example.com"}],
                },
                {"name": "bob", "contacts": [{"channel": "backup", "address": "bob@example.com"}]},
            ],
            "schedules": [
                {
                    "name": "primary",
                    "timezone": "Europe/Berlin",
                    "layers": [
                        {
                            "rotation": "weekly",
                            "handoff": "mon 09:00",
                            "start": "2026-01-05",
                            "members": ["alice", "bob"],
                        }
                    ],
                }
            ],
            "teams": [
                {
                    "name": "platform",
                    "channel": "team-log",
                    # Step 2 pages whoever is on call in `primary`, through the backup channel.
                    "escalation": [
                        {"notify": ["pager"], "wait": "5m"},
                        {"notify": [{"schedule": "primary"}], "wait": "10m"},
                    ],
                },
                {
                    "name": "db",
                    "channel": "team-log",
                    "escalation": [{"notify": ["pager"], "wait": "5m"}],
                },
            ],
        },
        "inhibit.yaml": {
            # While an outage (severity=page) fires in a cluster, warnings there are noise.
            "inhibit_rules": [
                {
                    "name": "outage-mutes-warnings",
                    "source": 'severity="page"',
                    "target": 'severity="warning"',
                    "equal": ["cluster"],
                }
            ]
        },
        "routing.yaml": {
            "defaults": {
                "team": "platform",
                "severity": "SEV3",
                "group_by": ["alertname", "cluster"],
            },
            "rules": [
                {"name": "heartbeat", "match": 'alertname="Watchdog"', "drop": True},
                {
                    "name": "database",
                    "match": ['team="db"'],
                    "team": "db",
                    "severity": "SEV2",
                    "group_by": ["alertname"],
                    "continue": False,
                },
                {
                    "name": "alerts",
                    "severity": "SEV3",
                    "severity_from_label": {
                        "label": "severity",
                        "values": {
                            "page": "SEV1",
                            "critical": "SEV2",
                            "warning": "SEV3",
                            "info": "SEV4",
                        },
                    },
                    "title": "{{ labels.alertname }} on {{ labels.instance }}",
                    "runbook": "{{ annotations.runbook_url }}",
                },
            ],
        },
    }
    for name, document in documents.items():
        (directory / name).write_text(yaml.safe_dump(document, sort_keys=False))
    return directory


def rules_env(page_url: str) -> dict[str, str]:
    return {
        "TEST_WEBHOOK_TOKEN": TOKEN,
        "TEST_HMAC_SECRET": HMAC_SECRET,
        "TEST_PAGE_URL": page_url,
        "TEST_BACKUP_URL": page_url.rstrip("/") + "/backup",
        "SEVROUTER_API_TOKENS": f"alice:{ALICE_TOKEN},bob:{BOB_TOKEN}",
        "SEVROUTER_LINK_SECRET": "test-link-secret",
        "SEVROUTER_PUBLIC_URL": "http://sevrouter.test",
        "SEVROUTER_PAGERDUTY_WEBHOOK_SECRETS": PAGERDUTY_WEBHOOK_SECRET,
    }
