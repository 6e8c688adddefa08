"""Every real run replays to the same bytes as before the restructuring (tests/golden/digests.json).

The digests were recorded from commit 639ab2d, the last main before the modules
moved (``python -m tests.support.golden --rev 639ab2d``): OTLP protobuf requests,
OTLP/JSON lines and requests under two option sets, and every view. A change that
is meant to alter the output re-records them with ``--write`` and says why. Re-recorded
once since, for #11: a thread's busy time is the union of its nodes' intervals, which
changed the views (not the OTLP) of the three corpus runs whose nodes overlap on one
thread (OpenLineage's dbt_test_target and dbt_no_test_metadata_target, twice).
"""

from __future__ import annotations

import json

import pytest

from tests.support.golden import CORPUS, DIGESTS, compute, runs

RECORDED: dict[str, dict[str, str]] = json.loads(DIGESTS.read_text())
NAMES = sorted(runs())


@pytest.mark.parametrize("name", NAMES)
def test_run_replays_to_the_recorded_bytes(name: str) -> None:
    computed = compute([name])
    assert computed, name
    for entry, digests in computed.items():
        assert entry in RECORDED, f"{entry}: no recorded digests (new run? record with --write)"
        changed = sorted(k for k in RECORDED[entry] if RECORDED[entry][k] != digests.get(k))
        assert not changed, f"{entry}: {', '.join(changed)} differ from the recording"


def test_every_recorded_run_is_still_replayed() -> None:
    recorded_runs = {entry.rsplit(" [", 1)[0] for entry in RECORDED}
    if not CORPUS.is_dir():
        recorded_runs = {r for r in recorded_runs if not r.startswith("corpus/")}
    assert recorded_runs == set(NAMES)
