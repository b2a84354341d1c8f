"""Readers and writers at the same time: readers see whole releases; syncs take turns on the lock."""

import json
import os
import subprocess
import sys
from pathlib import Path

from test_crash import check_readers_see_one_release
from test_sync import add_release

from biolake.lake.faults import PAUSE_VARIABLE
from biolake.lake.lake import Lake

BIOLAKE = [sys.executable, "-c", "from biolake.cli import main; main()"]
SLOW = {**os.environ, PAUSE_VARIABLE: "0.05"}   # a pause at every fault point: the writer is caught half-way


def test_readers_querying_during_an_ingest_see_the_old_or_the_new_release_never_a_mix(loaded_lake, release_folder):
    root = loaded_lake.location.root
    writer = subprocess.Popen([*BIOLAKE, "ingest", str(release_folder), "--lake", root, "--release", "r2", "--quiet"],
                              stderr=subprocess.PIPE, text=True, env=SLOW)
    seen = []
    while writer.poll() is None:
        lake = Lake.open(root)
        check_readers_see_one_release(lake)
        seen.append(lake.releases()[-1].release)
    assert writer.wait() == 0, writer.stderr.read()
    writer.stderr.close()
    check_readers_see_one_release(Lake.open(root))
    assert seen.count("r1") >= 5, f"the readers should have queried while r2 was written: {seen}"


def test_two_syncs_at_once_take_turns_on_the_lock(lake, release_folder, tmp_path):
    incoming = tmp_path / "incoming"
    for name in ("2026-09", "2026-10"):
        add_release(incoming, release_folder, name)
    command = [*BIOLAKE, "sync", str(incoming), "--lake", lake.location.root, "--wait", "300"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=SLOW)
            for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    summaries = sorted(stdout.strip() for stdout, _ in outputs)
    assert summaries == ["sync done: 0 ingested, 2 already present", "sync done: 2 ingested, 0 already present"]
    assert [r.release for r in lake.releases()] == ["2026-09", "2026-10"]


HOLDER = """
import json, sys, time
from biolake.lake.lock import lake_lock
from biolake.lake.storage import Location
location, log = Location.parse(sys.argv[1]), sys.argv[2]
for _ in range(15):
    with lake_lock(location, "write", wait=60):
        start = time.monotonic()
        time.sleep(0.01)
        with open(log, "a") as out:
            out.write(json.dumps([start, time.monotonic()]) + "\\n")
"""


def test_lake_lock__many_waiting_processes_never_hold_it_together(lake, tmp_path):
    log = tmp_path / "held.jsonl"
    holders = [subprocess.Popen([sys.executable, "-c", HOLDER, lake.location.root, str(log)]) for _ in range(5)]
    assert [holder.wait(timeout=120) for holder in holders] == [0] * 5
    spans = sorted(tuple(json.loads(line)) for line in log.read_text().splitlines())
    assert len(spans) == 75
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:])), "two holders overlapped"
    assert not list((Path(lake.location.root) / "_locks").iterdir()), "a lock or draft was left behind"
