import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
import yaml
from cli_process import CliProcess, run

from click.testing import CliRunner

from biolake.cli import main
from biolake.ingest import release as ingest_release
from biolake.ingest.participants import OverlapRule
from biolake.ingest.release import IngestWarning, file_sha256
from biolake.ingest.sync import sync
from biolake.lake.errors import InputError, LakeError, ReleaseError
from biolake.lake.lock import lake_lock



def add_release(incoming: Path, release_folder: Path, name: str) -> Path:
    """Copy the small release into ``incoming/name`` with its manifest naming it ``name``."""
    folder = Path(shutil.copytree(release_folder, incoming / name))
    manifest = yaml.safe_load((folder / "release.yaml").read_text())
    manifest["release"] = name
    (folder / "release.yaml").write_text(yaml.safe_dump(manifest))
    return folder


def test_sync__ingests_in_order_then_does_nothing(lake, release_folder, tmp_path):
    incoming = tmp_path / "incoming"
    for name in ("2026-10", "2026-09"):
        add_release(incoming, release_folder, name)
    first = sync(lake, incoming)
    assert first.ingested == ["2026-09", "2026-10"]
    assert [r.release for r in lake.releases()] == ["2026-09", "2026-10"]
    versions = lake.delta("releases").version()
    second = sync(lake, incoming)
    assert second.ingested == [] and second.unchanged == ["2026-09", "2026-10"]
    assert lake.delta("releases").version() == versions


def test_sync__a_changed_release_is_an_error(lake, release_folder, tmp_path):
    incoming = tmp_path / "incoming"
    folder = add_release(incoming, release_folder, "2026-09")
    sync(lake, incoming)
    with open(folder / "covariates.csv", "a") as handle:  # republished with a new checksum
        handle.write("9999999,50,F,Reading,0,0,0,0,0,0,0,0,0,0,170,0.1,0\n")
    manifest = yaml.safe_load((folder / "release.yaml").read_text())
    manifest["checksums"]["covariates.csv"] = file_sha256(folder / "covariates.csv")
    (folder / "release.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(ReleaseError, match="covariates.csv"):
        sync(lake, incoming)


def test_sync__a_release_without_listed_checksums_is_recorded_by_blake3_and_checked_by_it(lake, release_folder,
                                                                                           tmp_path):
    incoming = tmp_path / "incoming"
    folder = add_release(incoming, release_folder, "2026-09")
    manifest = yaml.safe_load((folder / "release.yaml").read_text())
    del manifest["checksums"]
    (folder / "release.yaml").write_text(yaml.safe_dump(manifest))
    sync(lake, incoming)
    recorded = lake.resolve_release("2026-09").source_checksums
    assert recorded["genotypes.bed"] == f"blake3:{blake3.blake3((folder / 'genotypes.bed').read_bytes()).hexdigest()}"
    assert sync(lake, incoming).unchanged == ["2026-09"]
    with open(folder / "covariates.csv", "a") as handle:
        handle.write("9999999,50,F,Reading,0,0,0,0,0,0,0,0,0,0,170,0.1,0\n")
    with pytest.raises(ReleaseError, match="covariates.csv"):
        sync(lake, incoming)


def sync_cli(incoming: Path, lake, *flags: str):
    return CliRunner().invoke(main, ["sync", str(incoming), "--lake", lake.location.root, "--quiet", *flags])


def test_sync__an_edited_file_behind_an_unchanged_manifest_is_noticed(lake, release_folder, tmp_path):
    incoming = tmp_path / "incoming"
    folder = add_release(incoming, release_folder, "2026-09")
    sync(lake, incoming)
    with open(folder / "covariates.csv", "a") as handle:   # the manifest still lists the old sha256
        handle.write("9999999,50,F,Reading,0,0,0,0,0,0,0,0,0,0,170,0.1,0\n")
    registry = lake.delta("releases").version()
    plain = sync_cli(incoming, lake)
    assert plain.exit_code == 0, plain.output
    assert (f"warning: {folder}/covariates.csv of release 2026-09 changed since it was loaded (size/mtime); "
            "run biolake sync --verify") in plain.output
    verified = sync_cli(incoming, lake, "--verify")
    assert verified.exit_code == 1, verified.output
    assert f"{folder}/covariates.csv of release 2026-09 changed since it was loaded (checksum)" in verified.output
    assert "genotypes.bed" not in verified.output and "1 changed since loaded" in verified.output
    assert lake.delta("releases").version() == registry        # nothing ingested again


def test_sync__bit_rot_keeping_size_and_mtime_is_caught_only_by_verify(lake, release_folder, tmp_path):
    incoming = tmp_path / "incoming"
    folder = add_release(incoming, release_folder, "2026-09")
    sync(lake, incoming)
    bed = folder / "genotypes.bed"
    stat = bed.stat()
    data = bytearray(bed.read_bytes())
    data[len(data) // 2] ^= 0x10
    bed.write_bytes(bytes(data))
    os.utime(bed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert sync(lake, incoming).changed_files == []
    report = sync(lake, incoming, verify=True)       # re-read, though this process hashed it at ingest
    assert report.changed == ["2026-09"] and report.unchanged == []
    assert report.changed_files == [f"{folder}/genotypes.bed of release 2026-09 changed since it was loaded "
                                    "(checksum)"]


def test_sync__verify_of_unchanged_releases_exits_0_and_lists_missing_files(lake, release_folder, tmp_path):
    incoming = tmp_path / "incoming"
    folder = add_release(incoming, release_folder, "2026-09")
    add_release(incoming, release_folder, "2026-10")
    sync(lake, incoming)
    result = sync_cli(incoming, lake, "--verify")
    assert result.exit_code == 0, result.output
    assert "2 already present, 0 changed since loaded" in result.output
    (folder / "idps.csv").unlink()
    assert sync(lake, incoming, verify=True).changed_files == [f"{folder}/idps.csv of release 2026-09 is missing"]


def test_sync__releases_loaded_without_sizes_and_mtimes_are_still_verified(lake, release_folder, tmp_path,
                                                                          monkeypatch):
    incoming = tmp_path / "incoming"
    folder = add_release(incoming, release_folder, "2026-09")
    with monkeypatch.context() as patched:      # as a release loaded before they were recorded
        patched.setattr(ingest_release, "source_stats", lambda sources: {})
        sync(lake, incoming)
    assert lake.resolve_release("2026-09").source_stats == {}
    with open(folder / "covariates.csv", "a") as handle:
        handle.write("9999999,50,F,Reading,0,0,0,0,0,0,0,0,0,0,170,0.1,0\n")
    assert sync(lake, incoming).changed_files == []
    assert sync(lake, incoming, verify=True).changed == ["2026-09"]


def test_sync__a_bad_release_stops_and_keeps_the_earlier_ones(lake, release_folder, tmp_path):
    incoming = tmp_path / "incoming"
    add_release(incoming, release_folder, "2026-09")
    bad = add_release(incoming, release_folder, "2026-10")
    (bad / "idps.csv").write_text("eid,25001-2.0\n1,large\n")
    result = run(["sync", str(incoming), "--lake", lake.location.root, "--quiet"], env=dict(os.environ))
    assert result.returncode == 2
    assert "idps.csv" in result.stderr and "Traceback" not in result.stderr
    assert [r.release for r in lake.releases()] == ["2026-09"]


def test_sync__a_release_whose_idps_match_no_genotyped_participant_is_not_committed(lake, release_folder, tmp_path):
    incoming = tmp_path / "incoming"
    bad = add_release(incoming, release_folder, "2026-09")
    lines = (bad / "idps.csv").read_text().splitlines()
    (bad / "idps.csv").write_text("\n".join([lines[0], *(f"X{line}" for line in lines[1:])]) + "\n")
    manifest = yaml.safe_load((bad / "release.yaml").read_text())
    del manifest["checksums"]
    (bad / "release.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(InputError, match="idps.csv: 0 of its 301 participants"):
        sync(lake, incoming)
    assert lake.releases() == []
    with pytest.warns(IngestWarning, match="idps.csv: only 0 of its 301 participants"):
        assert sync(lake, incoming, overlap=OverlapRule(allow_partial=True)).ingested == ["2026-09"]


def test_lake_lock__two_syncs_cannot_interleave_and_stale_locks_are_taken_over(lake):
    with lake_lock(lake.location, "sync"):
        with pytest.raises(LakeError, match="holds the lock"):
            with lake_lock(lake.location, "sync"):
                pass
    dead = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    lock = Path(lake.location.root) / "_locks" / "sync.lock"
    lock.write_text(f'{{"host": "{os.uname().nodename}", "pid": {dead.pid}}}')
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    with lake_lock(lake.location, "sync"):
        assert lock.exists()
    assert not lock.exists()


def test_sync__sigkill_then_rerun_completes(lake, release_folder, tmp_path):
    incoming = tmp_path / "incoming"
    for name in ("2026-09", "2026-10"):
        add_release(incoming, release_folder, name)
    command = ["sync", str(incoming), "--lake", lake.location.root, "--quiet"]
    held = CliProcess(command, {**os.environ, "BIOLAKE_FAULT_HOLD": "during:genotypes"})
    assert any(line.startswith("holding at") for line in held.stderr_lines())
    held.kill()
    assert held.finish().returncode == -signal.SIGKILL
    assert lake.releases() == []
    rerun = run(command, env=dict(os.environ))
    assert rerun.returncode == 0, rerun.stderr
    assert [r.release for r in lake.releases()] == ["2026-09", "2026-10"]
