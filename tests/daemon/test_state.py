"""The --state-file store: a restart keeps what was remembered; a bad file stops the monitor clearly."""

from __future__ import annotations

import json
import os

import pytest

from monitor.core.errors import ConfigError, StateError
from monitor.core.history import CREATED, FAILED, Attempt, History, Quarantine
from monitor.core.memory import Memory, remember
from monitor.core.state_doc import State, dumps
from monitor.daemon.state import FileStateStore, InMemoryStateStore
from tests.support.pure_world import CLUSTER, SSH_RULE, V1_RULE, observe

V1 = remember(Memory(), observe([V1_RULE])[0], (V1_RULE,), 0.0).paths[0][1].covering[0]


def rich_state() -> State:
    healthy = remember(Memory(), observe([V1_RULE, SSH_RULE])[0], (V1_RULE, SSH_RULE), 100.0)
    revoked = remember(healthy, observe([SSH_RULE])[0], (SSH_RULE,), 115.0)
    history = History(
        attempts=(Attempt(V1, 180.0, CREATED), Attempt(V1, 400.0, FAILED, "UnauthorizedOperation")),
        quarantined=(Quarantine(V1, 500.0, 3),),
        orphaned=(("sgr-0000000000000our1", 90.0),),
    )
    return State(cluster=CLUSTER, memory=revoked, history=history)


def test_a_saved_state_loads_back_equal_after_a_restart(tmp_path):
    path = tmp_path / "state.json"
    FileStateStore(str(path), CLUSTER).save(rich_state())
    loaded = FileStateStore(str(path), CLUSTER).load()  # a new process, a new store
    assert loaded == rich_state()
    assert loaded.memory.paths[0][1].lost == (V1,)
    assert json.loads(path.read_text())["schema"] == "alb-sg-monitor/state"


def test_no_file_yet_means_nothing_remembered(tmp_path):
    assert FileStateStore(str(tmp_path / "absent.json"), CLUSTER).load() is None


def test_saving_replaces_the_file_atomically_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "state.json"
    store = FileStateStore(str(path), CLUSTER)
    store.save(State(cluster=CLUSTER))
    inode = os.stat(path).st_ino
    store.save(rich_state())
    assert os.listdir(tmp_path) == ["state.json"]
    assert os.stat(path).st_ino != inode  # a new file renamed over the old one, not rewritten in place
    assert store.load() == rich_state()


@pytest.mark.parametrize("content, problem", [
    ('{"schema": "alb-sg-monitor/state", "version": 1, "clus', "not valid JSON"),
    ("", "not valid JSON"),
    ('{"apiVersion": "v1", "kind": "ConfigMap"}', "not an alb-sg-monitor state document"),
    ('["alb-sg-monitor/state"]', "not an alb-sg-monitor state document"),
    ('{"schema": "alb-sg-monitor/state", "version": 7, "cluster": "prod-eks"}', "version 7 is not supported"),
    ('{"schema": "alb-sg-monitor/state", "version": 1, "cluster": "staging-eks"}',
     "belongs to cluster 'staging-eks', not 'prod-eks'"),
    ('{"schema": "alb-sg-monitor/state", "version": 1, "cluster": "prod-eks", "memory": {}, "history": {}}',
     "not an alb-sg-monitor/memory document"),
])
def test_a_corrupt_or_foreign_file_is_a_clear_error_naming_the_file_and_is_left_alone(tmp_path, content, problem):
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(StateError, match=problem) as error:
        FileStateStore(str(path), CLUSTER).load()
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert isinstance(error.value, ConfigError)  # the CLI prints it on one line and exits 2
    assert path.read_text() == content  # never silently reset


def test_a_corrupt_history_inside_a_valid_document_is_an_error(tmp_path):
    document = json.loads(dumps(rich_state()))
    document["history"]["attempts"][0]["outcome"] = "maybe"
    path = tmp_path / "state.json"
    path.write_text(json.dumps(document))
    with pytest.raises(StateError, match="unknown outcome 'maybe'"):
        FileStateStore(str(path), CLUSTER).load()


def test_an_unwritable_location_is_a_state_error(tmp_path):
    store = FileStateStore(str(tmp_path / "missing-dir" / "state.json"), CLUSTER)
    with pytest.raises(StateError, match="cannot be written"):
        store.save(rich_state())


def test_the_in_process_store_keeps_the_last_save():
    store = InMemoryStateStore()
    assert store.load() is None
    store.save(rich_state())
    assert store.load() == rich_state()
