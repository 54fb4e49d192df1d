"""`cadenza operations` against the real mesh: a generation run as a long-running
operation, followed to its result, and a long one cancelled, which stops the
generation in the generate service itself (its own metrics say so)."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli import cli
from tools.devmesh import Mesh


def generations(mesh: Mesh, outcome: str) -> tuple[float, float]:
    """The generate service's finished generations with this outcome, and those running."""
    url = f"http://127.0.0.1:{mesh.endpoints.metrics_ports['generate']}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    finished = running = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cadenza_generate_generations_total" \
                    and sample.labels["outcome"] == outcome:
                finished += sample.value
            if sample.name == "cadenza_generate_in_flight":
                running += sample.value
    return finished, running


def operation(mesh: Mesh, *args: str) -> tuple[int, dict[str, Any]]:
    done = cli(mesh, "operations", *args, "--json")
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_a_generation_runs_as_an_operation(mesh: Mesh) -> None:
    code, started = operation(mesh, "start", "Generate", "--request-json",
                              '{"bars": 2, "seed": 3}')
    assert code == 0 and started["name"].startswith("operations/")
    code, done = operation(mesh, "wait", started["name"], "--timeout", "120")
    assert code == 0 and done["done"], done
    (response,) = done["response"]["responses"]
    assert response["@type"].endswith("cadenza.generate.v1.GenerateResponse")
    assert response["result"]["seed"] == "3" and response["result"]["midi"]
    assert done["metadata"]["state"] == "OPERATION_STATE_SUCCEEDED"
    listing = cli(mesh, "operations", "list")
    assert started["name"] in listing.stdout and "done" in listing.stdout, listing.stderr
    code, deleted = operation(mesh, "delete", started["name"])
    assert code == 0 and deleted["deleted"]
    gone = cli(mesh, "operations", "get", started["name"])
    assert gone.returncode == 1 and "NOT_FOUND" in gone.stderr


def test_cancelling_an_operation_stops_the_generation(mesh: Mesh) -> None:
    cancelled_before, _ = generations(mesh, "cancelled")
    code, started = operation(mesh, "start", "Generate", "--request-json",
                              '{"bars": 128, "tempo_bpm": 60, "seed": 5}')
    assert code == 0
    name = started["name"]
    for _ in range(600):
        _, now = operation(mesh, "get", name)
        if int(now["metadata"].get("messages", 0)) > 0:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the generation never started streaming: {now}")
    assert not now.get("done"), "finished before it could be cancelled: make it longer"
    code, _ = operation(mesh, "cancel", name)
    assert code == 0
    code, done = operation(mesh, "wait", name, "--timeout", "60")
    assert code == 1 and done["error"]["code"] == 1  # CANCELLED
    assert done["metadata"]["state"] == "OPERATION_STATE_CANCELLED"
    for _ in range(100):  # the service counts the generation once its loop has stopped
        cancelled, running = generations(mesh, "cancelled")
        if cancelled > cancelled_before and running == 0:
            break
        time.sleep(0.1)
    assert cancelled == cancelled_before + 1 and running == 0


def test_request_json_shapes_make_one_call_or_a_batch() -> None:
    from cadenza.cli.operations import find_method, start_request

    one = start_request(find_method("Generate"), '{"bars": 4}')
    assert [len(c.messages) for c in one.calls] == [1]
    batch = start_request(find_method("GenerateCover"), '[{"prompt": "a"}, {"prompt": "b"}]')
    assert [len(c.messages) for c in batch.calls] == [1, 1]
    stream = start_request(find_method("IngestTrack"), '[{"header": {}}, {"audio_chunk": ""}]')
    assert [len(c.messages) for c in stream.calls] == [2]
    tracks = start_request(find_method("IngestTrack"), '[[{"header": {}}], [{"header": {}}]]')
    assert [len(c.messages) for c in tracks.calls] == [1, 1]
    assert tracks.method == "/cadenza.retrieval.v1.RetrievalService/IngestTrack"
    for bad, message in (('{"bars": "many"}', "GenerateRequest"), ("nope", "not JSON"),
                         ("3", "object or a list")):
        try:
            start_request(find_method("Generate"), bad)
        except ValueError as error:
            assert message in str(error)
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_a_batch_of_covers_and_a_text_run_as_operations(mesh: Mesh) -> None:
    code, started = operation(mesh, "start", "GenerateCover", "--request-json",
                              '[{"prompt": "rain", "seed": 1, "sampling": {"steps": 4}},'
                              ' {"prompt": "sun", "seed": 2, "sampling": {"steps": 4}}]')
    assert code == 0, started
    code, done = operation(mesh, "wait", started["name"], "--timeout", "180")
    assert code == 0, done
    covers = done["response"]["responses"]
    assert [c["@type"].rsplit(".", 1)[1] for c in covers] == ["GenerateCoverResponse"] * 2
    assert all(c["image"] for c in covers) and covers[0]["image"] != covers[1]["image"]
    assert done["metadata"]["calls_done"] == 2 and done["metadata"]["calls"] == 2

    code, started = operation(mesh, "start", "GenerateText", "--request-json",
                              '{"prompt": "A song title about rain:", "max_tokens": 8,'
                              ' "seed": 3}')
    assert code == 0, started
    code, done = operation(mesh, "wait", started["name"], "--timeout", "180")
    assert code == 0, done
    (text,) = done["response"]["responses"]
    assert text["@type"].endswith("GenerateTextResponse") and text["result"]["text"]
