"""Hot reload: valid rules replace the old ones at once, invalid ones are refused with the old
ones still running, and a reload under load loses no alert."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import yaml

from router.reload import Rules
from router.ruleset import Ruleset
from router.settings import Settings
from tests.support.payloads import alertmanager_body
from tests.support.rules import ALICE_TOKEN, TOKEN

AM = "/api/v1/webhooks/alertmanager"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}


def add_drop_rule(rules_path: Path, alertname: str) -> None:
    routing = yaml.safe_load((rules_path / "routing.yaml").read_text())
    routing["rules"].insert(
        0, {"name": f"drop-{alertname.lower()}", "match": f'alertname="{alertname}"', "drop": True}
    )
    (rules_path / "routing.yaml").write_text(yaml.safe_dump(routing, sort_keys=False))


def break_rules(rules_path: Path) -> None:
    (rules_path / "broken.yaml").write_text("rules:\n  - name: bad\n    match: 'severity=='\n")


def post(client: httpx.Client, alertname: str) -> dict[str, Any]:
    response = client.post(
        AM, content=alertmanager_body([{"alertname": alertname}]), headers=HEADERS
    )
    assert response.status_code == 202
    answer: dict[str, Any] = response.json()
    return answer


def test_reload_swaps_valid_rules(settings: Settings, ruleset: Ruleset, rules_path: Path) -> None:
    rules = Rules(settings, ruleset)
    seen: list[Ruleset] = []
    rules.listeners.append(seen.append)
    assert not rules.changed_on_disk()
    add_drop_rule(rules_path, "Noise")
    assert rules.changed_on_disk()
    assert rules.reload("test")
    assert seen == [rules.current]
    assert rules.current.rules[0].name == "drop-noise"
    assert rules.last_error == []


def test_invalid_rules_are_refused_and_the_old_ones_kept(
    settings: Settings, ruleset: Ruleset, rules_path: Path
) -> None:
    rules = Rules(settings, ruleset)
    break_rules(rules_path)
    assert not rules.reload("test")
    assert rules.current is ruleset
    assert len(rules.last_error) == 1
    assert "broken.yaml: rules[bad].match[0]" in rules.last_error[0]
    assert not rules.changed_on_disk()  # the same broken files are not retried in a loop


def test_post_reload_applies_new_rules(client: httpx.Client, rules_path: Path) -> None:
    assert post(client, "Noise")["incidents"]["opened"] == ["INC-1"]
    add_drop_rule(rules_path, "Noise")
    assert client.post("/-/reload").status_code == 401
    response = client.post("/-/reload", headers=ALICE)
    assert response.status_code == 200
    assert post(client, "Noise")["dropped"] == 1


def test_post_reload_refuses_invalid_rules(client: httpx.Client, rules_path: Path) -> None:
    break_rules(rules_path)
    response = client.post("/-/reload", headers=ALICE)
    assert response.status_code == 400
    assert "broken.yaml" in response.json()["problems"][0]
    ready = client.get("/readyz")
    # Still ready: the old rules keep routing; /readyz says why the reload was refused.
    assert ready.status_code == 200
    assert "broken.yaml" in ready.json()["rules"]["last_reload_error"][0]
    assert post(client, "StillRouted")["incidents"]["opened"] == ["INC-1"]


def test_reload_under_load_loses_no_alert(client: httpx.Client, rules_path: Path) -> None:
    names = [f"Alert{n}" for n in range(200)]
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def send(chunk: list[str]) -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=10) as own:
            for name in chunk:
                answer = post(own, name)
                with lock:
                    results.append(answer)

    senders = [threading.Thread(target=send, args=(names[i::4],)) for i in range(4)]
    for thread in senders:
        thread.start()
    reloads = 0
    while any(t.is_alive() for t in senders):
        add_drop_rule(rules_path, f"Never{reloads}")
        assert client.post("/-/reload", headers=ALICE).status_code == 200
        reloads += 1
    for thread in senders:
        thread.join()
    assert reloads >= 2
    assert len(results) == 200
    assert sum(len(r["incidents"]["opened"]) for r in results) == 200
    assert len(client.get("/api/v1/incidents?limit=500").json()["incidents"]) == 200
