"""Withdrawal removes participants everywhere, and no version of the lake can show them again."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import blake3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake

from biolake.cli import main
from biolake.lake.errors import LakeError
from biolake.lake.lake import Lake
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.lake.vectors import decode_calls, decode_floats
from biolake.lake import withdraw as withdrawal
from biolake.lake.withdraw import withdraw
from biolake.queries import connect

KEY_FREE_DIGESTS = (hashlib.md5, hashlib.sha1, hashlib.sha224, hashlib.sha256, hashlib.sha384, hashlib.sha512,
                    hashlib.sha3_256, hashlib.blake2b, hashlib.blake2s, blake3.blake3)


def assay_order(lake, release, assay):
    rows = [r for r in lake.read("samples", release=release).to_pylist() if r["assay"] == assay]
    return [r["participant_id"] for r in sorted(rows, key=lambda r: r["sample_index"])]


@pytest.fixture
def two_releases(loaded_lake, release_folder):
    sources, _ = ReleaseSources.from_folder(release_folder)
    ingest_release(loaded_lake, sources, release="r2", source="test")
    return loaded_lake


def test_withdraw__removes_participants_from_every_release(two_releases):
    lake = two_releases
    genotyped, methylated = assay_order(lake, "r1", "genotypes"), assay_order(lake, "r1", "methylation")
    called = assay_order(lake, "r1", "cnv")   # the participants the CNV calls were made for
    gone = [methylated[0], methylated[5], genotyped[-1]]
    keep = [i for i, p in enumerate(genotyped) if p not in gone]
    keep_m = [i for i, p in enumerate(methylated) if p not in gone]
    calls_before = decode_calls(lake.read("genotypes", release="r1").sort_by("variant_index")
                                .column("calls"), len(genotyped))
    betas_before = decode_floats(lake.read("methylation", release="r1").sort_by("cpg_index")
                                 .column("beta"), len(methylated))

    report = withdraw(lake, gone)

    assert report.participants == 3
    for release in ("r1", "r2"):
        assert assay_order(lake, release, "genotypes") == [genotyped[i] for i in keep]
        assert assay_order(lake, release, "methylation") == [methylated[i] for i in keep_m]
        assert assay_order(lake, release, "cnv") == [p for p in called if p not in gone]
        samples = lake.read("samples", release=release)
        assert sorted(samples.column("sample_index").to_pylist()) == \
            sorted(list(range(len(keep))) + list(range(len(keep_m))) + list(range(len(called) - len(gone))))
        for table in ("idps", "covariates", "cnvs"):
            assert not set(gone) & set(lake.read(table, release=release).column("participant_id").to_pylist())
        genotypes = lake.read("genotypes", release=release).sort_by("variant_index")
        after = decode_calls(genotypes.column("calls"), len(keep))
        np.testing.assert_array_equal(after, calls_before[:, keep])
        np.testing.assert_allclose(genotypes.column("alt_freq").to_numpy(), np.nanmean(after, axis=1) / 2)
        variants = lake.read("variants", release=release).sort_by("variant_index")
        assert variants.column("alt_freq").equals(genotypes.column("alt_freq"))
        betas = decode_floats(lake.read("methylation", release=release).sort_by("cpg_index").column("beta"),
                              len(keep_m))
        np.testing.assert_array_equal(betas, betas_before[:, keep_m])
    audit = lake.read("withdrawals").to_pylist()
    assert len(audit) == 1 and audit[0]["participants"] == 3
    assert not any(p in json.dumps(audit, default=str) for p in gone)


def test_withdraw__no_version_or_file_keeps_a_trace(two_releases):
    lake = two_releases
    gone = assay_order(lake, "r1", "methylation")[:2]
    withdraw(lake, gone)
    root = Path(lake.location.root)
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".crc", ".yaml", ".lock"):
            text = path.read_text(errors="replace")
            assert not any(p in text for p in gone), path
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            if "participant_id" in table.column_names:
                assert not set(gone) & set(table.column("participant_id").to_pylist()), path
    for name in ("samples", "idps", "covariates"):
        table = DeltaTable(lake.table_uri(name))
        for version in range(table.version()):
            try:
                old = DeltaTable(lake.table_uri(name), version=version).to_pyarrow_table()
            except Exception:  # the version is gone, as it must be
                continue
            assert not set(gone) & set(old.column("participant_id").to_pylist()), (name, version)


def test_withdraw__rerun_is_harmless_and_cli_reads_an_id_file(two_releases, tmp_path):
    lake = two_releases
    gone = assay_order(lake, "r2", "genotypes")[:2]
    ids = tmp_path / "withdrawn.txt"
    ids.write_text("eid\n" + "\n".join(gone) + "\n")
    for _ in range(2):
        result = CliRunner().invoke(main, ["withdraw", "--lake", lake.location.root, "--ids", str(ids),
                                           "--quiet"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert "rewrote 0 table releases" in result.output
    assert len(assay_order(lake, "r2", "genotypes")) == 301 - 2


def test_withdraw__audit_is_queryable_in_sql(two_releases):
    withdraw(two_releases, assay_order(two_releases, "r1", "genotypes")[:1])
    assert connect(two_releases).execute("SELECT participants FROM withdrawals").fetchall() == [(1,)]


def test_withdraw__resumes_after_an_interruption(two_releases, monkeypatch):
    lake = two_releases
    methylated = assay_order(lake, "r1", "methylation")
    gone = methylated[:2]
    genotyped = assay_order(lake, "r1", "genotypes")
    expected_genotyped = [p for p in genotyped if p not in gone]
    keep = [i for i, p in enumerate(genotyped) if p not in gone]
    calls_before = decode_calls(lake.read("genotypes", release="r1").sort_by("variant_index")
                                .column("calls"), len(genotyped))
    rewrite_methylation = withdrawal._rewrite_methylation

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed between the genotype and methylation rewrites")

    monkeypatch.setattr(withdrawal, "_rewrite_methylation", crash)
    with pytest.raises(KeyboardInterrupt):
        withdraw(lake, gone)
    monkeypatch.setattr(withdrawal, "_rewrite_methylation", rewrite_methylation)
    withdraw(lake, gone)
    for release in ("r1", "r2"):
        assert assay_order(lake, release, "genotypes") == expected_genotyped
        assert assay_order(lake, release, "methylation") == methylated[2:]
        calls = lake.read("genotypes", release=release).sort_by("variant_index").column("calls")
        np.testing.assert_array_equal(decode_calls(calls, len(keep)), calls_before[:, keep])
    assert not list((Path(lake.location.root) / "_locks").glob("withdraw-*"))


def test_withdraw__also_clears_rows_of_abandoned_ingests(two_releases):
    lake = two_releases
    covariates = lake.read("covariates", release="r1")
    with pytest.raises(RuntimeError):
        with lake.begin_release("r3", source="test") as writer:
            writer.write("covariates", covariates.set_column(0, "release", pa.array(["r3"] * covariates.num_rows)))
            raise RuntimeError("killed")
    withdraw(lake, covariates.column("participant_id").to_pylist()[:1])
    assert "r3" not in lake.releases_with_rows("covariates")


def test_audit__finds_participants_before_withdrawal_and_nothing_after(loaded_lake, tmp_path):
    from biolake.lake.audit import audit

    gone = loaded_lake.read("idps").column("participant_id").to_pylist()[:3]
    before = audit(loaded_lake, gone)
    assert not before.clean and any("idps/" in path for path in before.traces)
    assert any("_delta_log/" in path for path in before.traces), "column statistics in the log name them too"
    withdraw(loaded_lake, gone)
    after = audit(loaded_lake, gone)
    assert after.clean, after.traces
    (tmp_path / "ids.txt").write_text("\n".join(gone) + "\n")
    result = CliRunner().invoke(main, ["audit", "--lake", loaded_lake.location.root, "--ids", str(tmp_path / "ids.txt")])
    assert result.exit_code == 0 and "no trace of the ids" in result.output


def killed(*args, **kwargs):
    raise KeyboardInterrupt("killed between the genotype and methylation rewrites")


def stored_hex(lake) -> set[str]:
    """Every 16-character window of every run of hex digits a reader of the lake's storage can see:
    in file names, text files and every value of every Parquet file (tables and log checkpoints)."""
    root, seen = Path(lake.location.root), []
    for path in root.rglob("*"):
        seen.append(str(path.relative_to(root)))
        if path.is_file():
            seen.append(json.dumps(pq.read_table(path).to_pylist(), default=str) if path.suffix == ".parquet"
                        else path.read_text(errors="replace"))
    runs = re.findall(r"[0-9a-f]{16,}", "\n".join(seen).lower())
    return {run[i:i + 16] for run in runs for i in range(len(run) - 15)}


def key_free_digests(ids: list[str]) -> set[str]:
    """What an attacker computes from a guessed list: every common digest of it, joined as the old code
    did (sorted, newline-joined) and in other obvious ways; each digest's first 16 hex digits."""
    joined = {"\n".join(sorted(ids)), ",".join(sorted(ids)), "".join(sorted(ids)), "\n".join(sorted(ids)) + "\n"}
    return {digest(text.encode()).hexdigest()[:16] for text in joined for digest in KEY_FREE_DIGESTS}


def recovered(lake, candidates: list[str], withdrawn: list[str]) -> list[str]:
    """The dictionary attack: hash every candidate id (and the withdrawn list itself, as an attacker
    confirming a guess would), and report each guess whose digest the lake's storage holds."""
    stored = stored_hex(lake)
    guesses = [[candidate] for candidate in candidates] + [withdrawn]
    return [",".join(guess) for guess in guesses if key_free_digests(guess) & stored]


def test_withdraw__hashing_candidate_ids_recovers_nobody(two_releases, release_folder, monkeypatch):
    lake = two_releases
    candidates = sorted({line.split(",")[0] for line in
                         (release_folder / "covariates.csv").read_text().splitlines()[1:]})
    one, several = assay_order(lake, "r1", "genotypes")[:1], assay_order(lake, "r1", "methylation")[3:7]
    assert set(one + several) <= set(candidates)
    withdraw(lake, one)
    assert recovered(lake, candidates, one) == []
    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(withdrawal, "_rewrite_methylation", killed)
        withdraw(lake, several)
    assert recovered(lake, candidates, several) == []                       # the journal is open
    withdraw(lake, several)
    assert recovered(lake, candidates, one) == recovered(lake, candidates, several) == []
    assert sorted(row["participants"] for row in lake.read("withdrawals").to_pylist()) == [1, 4]


def test_withdraw__drops_the_id_digests_earlier_versions_recorded(two_releases):
    lake = two_releases
    earlier = assay_order(lake, "r1", "genotypes")[:1]
    legacy = pa.table({"withdrawn_at": pa.array([None], pa.timestamp("us", tz="UTC")),
                       "participants": [1], "ids_sha256": [hashlib.sha256(earlier[0].encode()).hexdigest()],
                       "rewritten": pa.array([[]], pa.list_(pa.string())), "files_removed": [0]})
    write_deltalake(lake.table_uri("withdrawals"), legacy)
    assert recovered(lake, earlier, earlier)
    withdraw(lake, assay_order(lake, "r1", "genotypes")[1:2])
    assert recovered(lake, earlier, earlier) == []
    assert "ids_sha256" not in lake.read("withdrawals").column_names


def test_withdraw__an_interrupted_withdrawal_must_be_finished_with_its_own_list(two_releases, monkeypatch):
    lake = two_releases
    gone = assay_order(lake, "r1", "methylation")[:2]
    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(withdrawal, "_rewrite_methylation", killed)
        withdraw(lake, gone)
    with pytest.raises(LakeError, match="withdrawal of 2 participants was interrupted"):
        withdraw(lake, gone[:1])
    withdraw(lake, gone)
    assert not set(gone) & set(assay_order(lake, "r1", "methylation"))


def lake_files(lake) -> dict[str, bytes]:
    """Every file of the lake and its bytes, but the lock files a run takes and gives back."""
    root = Path(lake.location.root)
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and path.suffix != ".lock"}


def assert_same_vectors(lake, expected) -> None:
    """Each release of ``lake`` has ``expected``'s sample order, genotype calls and methylation betas."""
    for release in ("r1", "r2"):
        for assay, index, column, decode in (("genotypes", "variant_index", "calls", decode_calls),
                                             ("methylation", "cpg_index", "beta", decode_floats)):
            order = assay_order(lake, release, assay)
            assert order == assay_order(expected, release, assay)
            np.testing.assert_array_equal(
                decode(lake.read(assay, release=release).sort_by(index).column(column), len(order)),
                decode(expected.read(assay, release=release).sort_by(index).column(column), len(order)))


def kill_after_r1(original):
    """A stand-in for _withdraw_from_release that finishes release r1 and is killed at r2."""
    def withdraw_r1_only(lake, release, *args, **kwargs):
        if release != "r1":
            raise KeyboardInterrupt("killed after the samples of r1 were renumbered")
        original(lake, release, *args, **kwargs)
    return withdraw_r1_only


@pytest.mark.parametrize("stage", ["_rewrite_genotypes", "_rewrite_methylation", "_withdraw_from_release",
                                   "erase_history"])
def test_withdraw__a_list_of_the_same_length_is_refused_at_every_interrupted_stage(two_releases, tmp_path,
                                                                                    monkeypatch, stage):
    lake = two_releases
    methylated = assay_order(lake, "r1", "methylation")
    first, other = methylated[3:5], methylated[5:7]   # both in both assays, next to each other
    assert set(first + other) <= set(assay_order(lake, "r1", "genotypes"))
    uninterrupted = Lake.open(shutil.copytree(lake.location.root, tmp_path / "uninterrupted"))
    withdraw(uninterrupted, first)
    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        kill = kill_after_r1(withdrawal._withdraw_from_release) if stage == "_withdraw_from_release" else killed
        patched.setattr(withdrawal, stage, kill)
        withdraw(lake, first)
    interrupted = lake_files(lake)
    with pytest.raises(LakeError, match=r"pending with another list: finish it with the same list \(2 ids\)"):
        withdraw(lake, other)
    assert lake_files(lake) == interrupted
    withdraw(lake, first)
    assert_same_vectors(lake, uninterrupted)
    assert not list((Path(lake.location.root) / "_locks").glob("withdraw-*"))


def test_withdraw__a_journal_left_by_an_earlier_version_is_refused(two_releases):
    lake = two_releases
    legacy = Path(lake.location.root) / "_locks" / "withdraw-0123456789abcdef.json"
    legacy.parent.mkdir(exist_ok=True)
    legacy.write_text(json.dumps(["idps@r1", "genotypes@r1"]))
    before = lake_files(lake)
    with pytest.raises(LakeError, match="interrupted under an earlier biolake version; finish it with that version"):
        withdraw(lake, assay_order(lake, "r1", "genotypes")[:1])
    assert lake_files(lake) == before


def test_withdraw__sql_never_shows_the_id_digests_of_earlier_versions(two_releases):
    lake = two_releases
    legacy = pa.table({"withdrawn_at": pa.array([None], pa.timestamp("us", tz="UTC")),
                       "participants": [1], "ids_sha256": ["0" * 64],
                       "rewritten": pa.array([[]], pa.list_(pa.string())), "files_removed": [0]})
    write_deltalake(lake.table_uri("withdrawals"), legacy)
    columns = [row[0] for row in connect(lake).execute("DESCRIBE withdrawals").fetchall()]
    assert columns == ["withdrawn_at", "participants", "rewritten", "files_removed"]
