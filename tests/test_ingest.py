import gzip
from pathlib import Path

import blake3
import numpy as np
import polars as pl
import pytest
import yaml

from biolake.lake.chromosomes import chromosome
from biolake.ingest.mapped import mapped_bytes, mapped_windows
from biolake.ingest.plink import read_bim
from biolake.ingest.participants import OverlapRule
from biolake.ingest.release import IngestWarning, ReleaseSources, check_release, ingest_release
from biolake.ingest.text import read_text_table
from biolake.lake.errors import InputError, LakeError, ReleaseError
from biolake.lake.lock import lake_lock
from biolake.lake.vectors import decode_calls, decode_floats
from snapshot import lake_files


def fam_ids(folder: Path) -> list[str]:
    return [line.split()[1] for line in (folder / "genotypes.fam").read_text().splitlines()]


def sample_order(lake, assay: str) -> list[str]:
    rows = sorted((r for r in lake.read("samples").to_pylist() if r["assay"] == assay),
                  key=lambda r: r["sample_index"])
    return [r["participant_id"] for r in rows]


def test_ingest_release__genotypes_are_the_bed_bytes(loaded_lake, release_folder):
    ids = fam_ids(release_folder)
    raw = np.fromfile(release_folder / "genotypes.bed", dtype=np.uint8)[3:]
    table = loaded_lake.read("genotypes").sort_by("variant_index")
    stored = np.frombuffer(b"".join(table.column("calls").to_pylist()), np.uint8)
    np.testing.assert_array_equal(stored, raw)
    dosage = decode_calls(stored.reshape(table.num_rows, -1), len(ids))
    np.testing.assert_allclose(table.column("alt_freq").to_numpy(), np.nanmean(dosage, axis=1) / 2,
                               rtol=1e-12)
    np.testing.assert_array_equal(table.column("n_called").to_numpy(), (~np.isnan(dosage)).sum(axis=1))
    assert sample_order(loaded_lake, "genotypes") == ids


def test_ingest_release__variants_follow_the_bim(loaded_lake, release_folder):
    bim = [line.split() for line in (release_folder / "genotypes.bim").read_text().splitlines()]
    variants = loaded_lake.read("variants").sort_by("variant_index").to_pylist()
    assert [(v["chrom"], v["variant_id"], v["pos"], v["alt"], v["ref"]) for v in variants] == \
        [(b[0], b[1], int(b[3]), b[4], b[5]) for b in bim]


def test_ingest_release__variants_keep_the_bims_cm_with_0_as_unknown(lake, editable_release):
    bim = editable_release / "genotypes.bim"
    lines = [line.split() for line in bim.read_text().splitlines()]
    cm = [0.0 if k % 3 == 0 else round(0.01 * k, 4) for k in range(len(lines))]
    bim.write_text("".join("\t".join([c, v, repr(m), *rest]) + "\n" for (c, v, _, *rest), m in zip(lines, cm)))
    sources, _ = ReleaseSources.from_folder(editable_release)
    ingest_release(lake, sources, release="mapped", source="test")
    for table in ("variants", "genotypes"):
        stored = lake.read(table, columns=["variant_index", "cm"]).sort_by("variant_index").column("cm").to_pylist()
        assert stored == [m or None for m in cm]


def test_ingest_release__idps_and_covariates_keep_every_value(loaded_lake, release_folder):
    source = pl.read_csv(release_folder / "idps.csv", schema_overrides={"eid": pl.String})
    stored = pl.from_arrow(loaded_lake.read("idps")).sort("participant_id")
    source = source.sort("eid")
    assert stored["participant_id"].to_list() == source["eid"].to_list()
    for column in source.columns[1:]:
        np.testing.assert_array_equal(stored[column].to_numpy(), source[column].cast(pl.Float64).to_numpy())
    fields = loaded_lake.read("idp_fields").column("field").to_pylist()
    assert fields == source.columns[1:]
    covariates = pl.from_arrow(loaded_lake.read("covariates"))
    assert covariates.schema["site"] == pl.String and covariates.schema["age"] == pl.Float64


def test_ingest_release__methylation_vectors_match_the_matrix(loaded_lake, release_folder):
    matrix = pl.read_csv(release_folder / "methylation.csv")
    assert sample_order(loaded_lake, "methylation") == matrix.columns[1:]
    stored = loaded_lake.read("methylation").sort_by("cpg_index")
    betas = decode_floats(stored.column("beta").to_pylist(), matrix.width - 1)
    expected = matrix.drop(matrix.columns[0]).cast(pl.Float64).to_numpy().astype(np.float32)
    np.testing.assert_array_equal(betas, expected)
    assert stored.column("cpg_id").to_pylist() == matrix[matrix.columns[0]].to_list()


def test_ingest_release__explicit_sources_need_no_manifest(lake, release_folder):
    sources = ReleaseSources(idps=release_folder / "idps.csv", covariates=release_folder / "covariates.csv")
    report = ingest_release(lake, sources, release="pheno-only", source="test")
    assert report.release.tables == ("covariates", "idp_fields", "idps")


# --- bad input: one clear error naming the file, and the lake exactly as it was ---------------

def corrupt_bed_truncated(folder: Path) -> str:
    bed = folder / "genotypes.bed"
    bed.write_bytes(bed.read_bytes()[:-7])
    return "genotypes.bed"


def corrupt_bed_magic(folder: Path) -> str:
    bed = folder / "genotypes.bed"
    bed.write_bytes(b"\x00\x00\x00" + bed.read_bytes()[3:])
    return "genotypes.bed"


def corrupt_fam_count(folder: Path) -> str:
    fam = folder / "genotypes.fam"
    fam.write_text("\n".join(fam.read_text().splitlines()[:-1]) + "\n")
    return "genotypes.bed"


def corrupt_fam_duplicate(folder: Path) -> str:
    return _copy_line(folder / "genotypes.fam", 4, 5)


def corrupt_bim_chrom(folder: Path) -> str:
    return _edit_line(folder / "genotypes.bim", 10, lambda parts: ["chr99", *parts[1:]])


def corrupt_bim_duplicate(folder: Path) -> str:
    return _copy_line(folder / "genotypes.bim", 10, 11)


def corrupt_bim_cm(folder: Path) -> str:
    return _edit_line(folder / "genotypes.bim", 10, lambda parts: [*parts[:2], "1.2cM", *parts[3:]])


def corrupt_idp_text(folder: Path) -> str:
    return _replace_cell(folder / "idps.csv", 3, 2, "large")


def corrupt_idp_duplicate_id(folder: Path) -> str:
    return _copy_line(folder / "idps.csv", 2, 3)


def corrupt_covariates_empty(folder: Path) -> str:
    (folder / "covariates.csv").write_text("")
    return "covariates.csv"


def corrupt_covariates_header_only(folder: Path) -> str:
    return _keep_header_only(folder / "covariates.csv")


def corrupt_beta_range(folder: Path) -> str:
    return _replace_cell(folder / "methylation.csv", 40, 3, "1.5")


def corrupt_beta_text(folder: Path) -> str:
    return _replace_cell(folder / "methylation.csv", 7, 2, "high")


def corrupt_gzip_cut_short(folder: Path) -> str:
    data = gzip.compress((folder / "methylation.csv").read_bytes())
    (folder / "methylation.csv.gz").write_bytes(data[: len(data) // 2])
    _set_source(folder, "methylation", "methylation.csv.gz")
    return "methylation.csv.gz"


def corrupt_manifest_traversal(folder: Path) -> str:
    _set_source(folder, "idps", "../../etc/passwd")
    return "release.yaml"


def corrupt_manifest_missing_file(folder: Path) -> str:
    _set_source(folder, "covariates", "nope.csv")
    return "nope.csv"


def corrupt_idp_duplicate_column(folder: Path) -> str:
    lines = (folder / "idps.csv").read_text().splitlines()
    names = lines[0].split(",")
    lines[0] = ",".join([*names[:2], names[1], *names[3:]])
    (folder / "idps.csv").write_text("\n".join(lines) + "\n")
    return "idps.csv"


def corrupt_methylation_duplicate_cpg(folder: Path) -> str:
    return _copy_line(folder / "methylation.csv", 2, 3)


def corrupt_checksum(folder: Path) -> str:
    manifest = yaml.safe_load((folder / "release.yaml").read_text())
    manifest["checksums"] = {"covariates.csv": "0" * 64}
    (folder / "release.yaml").write_text(yaml.safe_dump(manifest))
    return "covariates.csv"


def corrupt_methylation_header_only(folder: Path) -> str:
    return _keep_header_only(folder / "methylation.csv")


def corrupt_release_name_is_a_date(folder: Path) -> str:
    (folder / "release.yaml").write_text((folder / "release.yaml").read_text() + "release: 2026-11-01\n")
    return "release.yaml"


def corrupt_field_id_not_a_number(folder: Path) -> str:
    return _replace_cell(folder / "idp_fields.csv", 2, 1, "twenty")


def corrupt_field_listed_twice(folder: Path) -> str:
    return _copy_line(folder / "idp_fields.csv", 1, 2)


def corrupt_covariates_ragged_row(folder: Path) -> str:
    return _rewrite_line(folder / "covariates.csv", 5, lambda line: ",".join(line.split(",")[:-3]))


def corrupt_idps_semicolon_row(folder: Path) -> str:
    return _rewrite_line(folder / "idps.csv", 7, lambda line: line.replace(",", ";"))


def corrupt_idps_not_genotyped(folder: Path) -> str:
    return _prefix_ids(folder / "idps.csv", "X", rows=slice(1, None))


def corrupt_methylation_samples_not_genotyped(folder: Path) -> str:
    return _rewrite_line(folder / "methylation.csv", 0, lambda header: header.replace(",", ",X"))


def _prefix_ids(path: Path, prefix: str, *, rows: slice) -> str:
    """Give the participants of ``rows`` (line indices) ids from another numbering."""
    lines = path.read_text().splitlines()
    lines[rows] = [prefix + line for line in lines[rows]]
    path.write_text("\n".join(lines) + "\n")
    return path.name


def _set_source(folder: Path, role: str, value: str) -> None:
    manifest = yaml.safe_load((folder / "release.yaml").read_text())
    manifest["sources"][role] = value
    (folder / "release.yaml").write_text(yaml.safe_dump(manifest))


def _replace_cell(path: Path, line_index: int, cell_index: int, value: str) -> str:
    lines = path.read_text().splitlines()
    cells = lines[line_index].split(",")
    cells[cell_index] = value
    lines[line_index] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return path.name


def _keep_header_only(path: Path) -> str:
    path.write_text(path.read_text().splitlines()[0] + "\n")
    return path.name


def _copy_line(path: Path, source: int, target: int) -> str:
    lines = path.read_text().splitlines()
    lines[target] = lines[source]
    path.write_text("\n".join(lines) + "\n")
    return path.name


def _edit_line(path: Path, index: int, change) -> str:
    """Change the fields of a PLINK text line (split on whitespace, joined by tabs)."""
    return _rewrite_line(path, index, lambda line: "\t".join(change(line.split())))


def _rewrite_line(path: Path, index: int, change) -> str:
    lines = path.read_text().splitlines()
    lines[index] = change(lines[index])
    path.write_text("\n".join(lines) + "\n")
    return path.name


CORRUPTIONS = [corrupt_bed_truncated, corrupt_bed_magic, corrupt_fam_count, corrupt_fam_duplicate,
               corrupt_bim_chrom, corrupt_bim_duplicate, corrupt_bim_cm, corrupt_idp_text, corrupt_idp_duplicate_id,
               corrupt_covariates_empty, corrupt_covariates_header_only, corrupt_beta_range,
               corrupt_beta_text, corrupt_gzip_cut_short, corrupt_manifest_traversal,
               corrupt_manifest_missing_file, corrupt_checksum, corrupt_idp_duplicate_column,
               corrupt_methylation_duplicate_cpg, corrupt_release_name_is_a_date,
               corrupt_field_id_not_a_number, corrupt_field_listed_twice, corrupt_methylation_header_only,
               corrupt_covariates_ragged_row, corrupt_idps_semicolon_row, corrupt_idps_not_genotyped,
               corrupt_methylation_samples_not_genotyped]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__.removeprefix("corrupt_"))
def test_ingest_release__bad_input_names_the_file_and_changes_nothing(loaded_lake, editable_release,
                                                                       corrupt, reliability):
    culprit = corrupt(editable_release)
    before = {name: loaded_lake.delta(name).version() for name in ("releases", "samples", "idps")}
    with pytest.raises(InputError) as error:
        sources, _ = ReleaseSources.from_folder(editable_release)
        ingest_release(loaded_lake, sources, release="r2", source="test")
    assert culprit in str(error.value)
    assert [r.release for r in loaded_lake.releases()] == ["r1"]
    assert {name: loaded_lake.delta(name).version() for name in before} == before
    reliability["bad source files refused with an error naming the file, lake unchanged"] += 1


def test_ingest_release__hard_calls_cost_at_most_1_5x_the_bed(loaded_lake, release_folder):
    lake_bytes = sum(f.stat().st_size for f in Path(loaded_lake.table_uri("genotypes")).rglob("*.parquet"))
    assert lake_bytes <= 1.5 * (release_folder / "genotypes.bed").stat().st_size


def test_ingest_release__records_source_checksums(loaded_lake, release_folder):
    manifest = yaml.safe_load((release_folder / "release.yaml").read_text())
    recorded = loaded_lake.resolve_release("r1").source_checksums
    assert recorded == {name: manifest["checksums"][name] for name in recorded}
    assert {"genotypes.bed", "idps.csv", "methylation.csv"} <= set(recorded)


def test_ingest_release__files_given_by_flag_are_recorded_by_blake3(lake, release_folder):
    ingest_release(lake, ReleaseSources(bfile=release_folder / "genotypes"), release="flags", source="test")
    recorded = lake.resolve_release("flags").source_checksums   # the manifest beside them was not verified
    bed = (release_folder / "genotypes.bed").read_bytes()
    assert recorded["genotypes.bed"] == f"blake3:{blake3.blake3(bed).hexdigest()}"


@pytest.mark.parametrize("offset, length", [(0, 10), (3, 70_000), (65_535, 2), (65_536 + 7, 100_000),
                                            (199_990, 10), (5, 0)])
def test_mapped_bytes__any_range_reads_as_the_file_does(tmp_path, offset, length):
    data = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    (tmp_path / "f").write_bytes(data)
    with open(tmp_path / "f", "rb") as handle:
        assert mapped_bytes(handle, offset, length).tobytes() == data[offset:offset + length]


def test_mapped_bytes__a_file_shorter_than_the_range_is_an_input_error(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 100)
    with open(tmp_path / "f", "rb") as handle, pytest.raises(InputError, match="changed while being read"):
        mapped_bytes(handle, 50, 51)


def test_mapped_windows__walk_the_whole_file(tmp_path, monkeypatch):
    monkeypatch.setattr("biolake.ingest.mapped.WINDOW_BYTES", 65_536)
    data = np.random.default_rng(1).integers(0, 256, 200_003, dtype=np.uint8).tobytes()
    (tmp_path / "f").write_bytes(data)
    with open(tmp_path / "f", "rb") as handle:
        windows = [window.tobytes() for window in mapped_windows(handle, len(data))]
    assert [len(w) for w in windows] == [65_536] * 3 + [200_003 - 3 * 65_536] and b"".join(windows) == data


def test_ingest_release__plink_text_files_split_on_any_whitespace(lake, editable_release):
    for name in ("genotypes.fam", "genotypes.bim"):
        path = editable_release / name
        path.write_text("\r\n".join("  ".join(line.split()) for line in path.read_text().splitlines()) + "\r\n")
    report = ingest_release(lake, ReleaseSources(bfile=editable_release / "genotypes"), release="ws",
                            source="test")
    assert report.counts["genotypes"] == 1500
    assert sample_order(lake, "genotypes") == fam_ids(editable_release)


BIM_ROWS = [["1", "rs1", "0", "100", "A", "G"], ["X", "rs2", "0.5", "200", "T", "C"]]


@pytest.mark.parametrize("layout", [
    "\n".join("\t".join(row) for row in BIM_ROWS) + "\n",            # as PLINK writes it: read as is
    "\n".join(" ".join(row) for row in BIM_ROWS),                     # one space, no final newline
    "\n".join("\t ".join(row) for row in BIM_ROWS) + "\n",           # runs of mixed whitespace
    "\n\n".join(" " + "\t".join(row) + "\t" for row in BIM_ROWS),     # padded lines, blank lines
    "\r\n".join("\t".join(row) for row in BIM_ROWS) + "\r\n",         # Windows line ends
], ids=["tabs", "spaces", "mixed runs", "padded", "crlf"])
def test_read_bim__every_whitespace_layout_reads_the_same(tmp_path, layout):
    path = tmp_path / "x.bim"
    path.write_bytes(layout.encode())
    variants = read_bim(path)
    assert variants.rows() == [("1", "rs1", 100, "A", "G", None), ("X", "rs2", 200, "T", "C", 0.5)]


@pytest.mark.parametrize("header, repeated", [("#FID\t\tIID  SEX", None), ("#FID  IID\tIID", "IID"),
                                              ("#FID IID IID", "IID")])
def test_read_text_table__whitespace_headers_are_checked_as_split(tmp_path, header, repeated):
    path = tmp_path / "x.psam"
    path.write_text(header + "\n" + "a b c\n")
    if repeated:
        with pytest.raises(InputError, match=f"column name '{repeated}' appears more than once"):
            read_text_table(path, whitespace=True)
    else:
        assert read_text_table(path, whitespace=True).columns == ["#FID", "IID", "SEX"]


def test_ingest_release__enigma_style_table_and_id_mismatch_report(lake, tmp_path, release_folder):
    ids = fam_ids(release_folder)
    enigma = tmp_path / "enigma.csv"
    enigma.write_text("SubjID,Site,LLatVent,RLatVent\n"
                      f"{ids[0]},Oslo,7000.5,6900\n{ids[1]},Oslo,,7100\nNOT-GENOTYPED-1,Cape Town,8000,8100\n")
    report = ingest_release(lake, ReleaseSources(bfile=release_folder / "genotypes", idps=enigma),
                            release="enigma", source="test")
    assert report.participants_not_genotyped == {"idps": ["NOT-GENOTYPED-1"]}
    table = lake.read("idps").sort_by("participant_id")
    assert table.schema.field("Site").type == "string"
    assert table.column("LLatVent").to_pylist()[:2] in ([7000.5, None], [None, 7000.5])


@pytest.mark.parametrize("form", ["tsv.gz", "parquet"])
def test_ingest_release__methylation_from_gzip_tsv_or_parquet(loaded_lake, lake, release_folder, tmp_path, form):
    matrix = pl.read_csv(release_folder / "methylation.csv")
    path = tmp_path / f"methylation.{form}"
    if form == "parquet":
        matrix.write_parquet(path)
    else:
        path.write_bytes(gzip.compress(matrix.write_csv(separator="\t").encode()))
    ingest_release(lake, ReleaseSources(methylation=path, probes=release_folder / "probes.csv"),
                   release="m", source="test")
    columns = ["cpg_id", "n_present", "beta"]
    assert lake.read("methylation").sort_by("cpg_index").select(columns).equals(
        loaded_lake.read("methylation").sort_by("cpg_index").select(columns))


def test_ingest_release__refused_while_another_writer_holds_the_lake(lake, release_folder):
    sources, _ = ReleaseSources.from_folder(release_folder)
    with lake_lock(lake.location, "write"):
        with pytest.raises(LakeError, match="holds the lock"):
            ingest_release(lake, sources, release="r1", source="test")
    assert lake.releases() == []


@pytest.mark.parametrize("header", ['"cpg","{a}","{b}"', "cpg, {a}, {b}"], ids=["R quoted", "padded"])
def test_ingest_release__methylation_header_names_are_parsed_not_split(lake, tmp_path, release_folder, header):
    lines = (release_folder / "methylation.csv").read_text().splitlines()
    names = lines[0].split(",")
    rows = [",".join(line.split(",")[:3]) for line in lines[1:]]
    path = tmp_path / "m.csv"
    path.write_text("\n".join([header.format(a=names[1], b=names[2]), *rows]) + "\n")
    ingest_release(lake, ReleaseSources(methylation=path, probes=release_folder / "probes.csv"),
                   release="m", source="test")
    assert sample_order(lake, "methylation") == names[1:3]


@pytest.mark.parametrize("cell", ["inf", "1e400"])
def test_ingest_release__non_finite_numbers_are_refused(lake, editable_release, cell):
    _replace_cell(editable_release / "covariates.csv", 2, 1, cell)
    with pytest.raises(InputError, match="finite"):
        ingest_release(lake, ReleaseSources(covariates=editable_release / "covariates.csv"),
                       release="x", source="test")


def test_ingest_release__padded_csv_cells_are_numbers(lake, editable_release):
    path = editable_release / "covariates.csv"
    path.write_text("\n".join(", ".join(line.split(",")) for line in path.read_text().splitlines()) + "\n")
    ingest_release(lake, ReleaseSources(covariates=path), release="x", source="test")
    assert pl.from_arrow(lake.read("covariates")).schema["age"] == pl.Float64


def test_ingest_release__plink_ids_spelled_na_and_blank_lines_are_kept_right(lake, editable_release):
    fam = editable_release / "genotypes.fam"
    lines = fam.read_text().splitlines()
    parts = lines[0].split()
    lines[0] = " ".join(["NA", "NA", *parts[2:]])
    fam.write_text("\n".join([lines[0], "", *lines[1:]]) + "\n\n")
    ingest_release(lake, ReleaseSources(bfile=editable_release / "genotypes"), release="x", source="test")
    order = sample_order(lake, "genotypes")
    assert order[0] == "NA" and order[1:] == [line.split()[1] for line in lines[1:]]


@pytest.mark.parametrize("change, message", [
    (lambda frame: frame.with_columns(pl.col("sex").replace({"F": "1", "M": "2"})), "holds numbers but"),
    (lambda frame: frame.with_columns(pl.lit("high").alias("stress")), "holds text but"),
    (lambda frame: frame.rename({"age": "AGE"}), "spell this column 'age'"),
    (lambda frame: frame.with_columns(pl.col("age").alias("Age")), "differ only in case"),
])
def test_ingest_release__covariates_must_agree_with_earlier_releases(loaded_lake, tmp_path, release_folder,
                                                                    change, message):
    covariates = change(pl.read_csv(release_folder / "covariates.csv", infer_schema=False))
    path = tmp_path / "covariates.csv"
    covariates.write_csv(path)
    before = loaded_lake.delta("covariates").version()
    with pytest.raises(InputError, match=message):
        ingest_release(loaded_lake, ReleaseSources(covariates=path), release="r2", source="test")
    assert loaded_lake.delta("covariates").version() == before


def test_release_sources__a_bed_path_stands_for_its_fileset(release_folder):
    sources = ReleaseSources(bfile=release_folder / "genotypes.bed", covariates=release_folder / "covariates.csv")
    assert [p.name for p in sources.files()] == ["genotypes.bed", "genotypes.bim", "genotypes.fam",
                                                 "covariates.csv"]


@pytest.mark.parametrize("code, spelled", [("1", "1"), ("chr7", "7"), ("23", "X"), ("chrX", "X"), ("26", "MT"),
                                           ("M", "MT"), ("chrM", "MT"), ("25", "XY"), ("chr99", None),
                                           ("../../x", None), ("27", None)])
def test_chromosome__one_spelling_for_every_source(code, spelled):
    assert chromosome(code) == spelled


def test_ingest_release__probe_chromosomes_are_checked(lake, editable_release):
    _replace_cell(editable_release / "probes.csv", 3, 1, "../../x")
    with pytest.raises(InputError, match=r"probes\.csv, line 4: unknown chromosome code '\.\./\.\./x'"):
        ingest_release(lake, ReleaseSources(methylation=editable_release / "methylation.csv",
                                            probes=editable_release / "probes.csv"), release="x", source="test")


@pytest.mark.parametrize("genotyped, rule, outcome", [
    (0, OverlapRule(), "refused"),
    (0, OverlapRule(allow_partial=True), "warned"),
    (1, OverlapRule(), "warned"),
    (3, OverlapRule(min_share=0.8), "refused"),
    (3, OverlapRule(min_share=0.8, allow_partial=True), "accepted"),
    (3, OverlapRule(), "accepted"),
    (4, OverlapRule(min_share=1), "accepted"),
])
def test_overlap_rule__refuses_none_shared_warns_under_half(genotyped, rule, outcome):
    ids, shared = {"a", "b", "c", "d"}, set("abcd"[:genotyped])
    if outcome == "refused":
        with pytest.raises(InputError, match=f"t.csv: {genotyped} of its 4 participants .* --allow-partial-overlap"):
            rule.check(ids, genotyped=shared, path="t.csv")
        return
    warned = rule.check(ids, genotyped=shared, path="t.csv")
    assert warned == ([f"t.csv: only {genotyped} of its 4 participants ({genotyped / 4:.1%}) are genotyped "
                       "in this release"] if outcome == "warned" else [])


def test_ingest_release__min_overlap_refuses_a_table_mostly_not_genotyped(lake, editable_release):
    _prefix_ids(editable_release / "covariates.csv", "X", rows=slice(1, 181))   # 121 of 301 genotyped
    sources = ReleaseSources(bfile=editable_release / "genotypes", covariates=editable_release / "covariates.csv")
    with pytest.raises(InputError, match=r"121 of its 301 participants \(40.2%\) .* at least 50.0% \(--min-overlap\)"):
        ingest_release(lake, sources, release="x", source="test", overlap=OverlapRule(min_share=0.5))
    assert lake.releases() == []
    with pytest.warns(IngestWarning, match="only 121 of its 301 participants"):
        report = ingest_release(lake, sources, release="x", source="test")
    assert len(report.participants_not_genotyped["covariates"]) == 180


def test_ingest_release__an_empty_idp_column_is_warned_of(lake, editable_release):
    path = editable_release / "idps.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + ",25099-2.0", *(line + ",NA" for line in lines[1:])]) + "\n")
    with pytest.warns(IngestWarning, match=r"idps.csv, column '25099-2.0': no values in any of its 301 rows"):
        ingest_release(lake, ReleaseSources(idps=path), release="x", source="test")


def test_check_release__counts_what_ingest_commits_and_writes_nothing(loaded_lake, release_folder):
    sources, _ = ReleaseSources.from_folder(release_folder)
    before = lake_files(loaded_lake.location.root)
    plan = check_release(loaded_lake, sources, release="r2")
    assert lake_files(loaded_lake.location.root) == before
    assert plan.warnings == [] and plan.participants_not_genotyped == {"idps": [], "covariates": [],
                                                                        "cnvs": [], "methylation": []}
    assert plan.counts == ingest_release(loaded_lake, sources, release="r2", source="test").counts


def test_check_release__streams_every_methylation_row(loaded_lake, editable_release):
    corrupt_beta_range(editable_release)
    sources, _ = ReleaseSources.from_folder(editable_release)
    before = lake_files(loaded_lake.location.root)
    with pytest.raises(InputError, match=r"methylation.csv, line 41, .*outside \[0, 1\]"):
        check_release(loaded_lake, sources, release="r2")
    assert lake_files(loaded_lake.location.root) == before


def test_check_release__a_committed_name_is_refused(loaded_lake, release_folder):
    sources, _ = ReleaseSources.from_folder(release_folder)
    with pytest.raises(ReleaseError, match="'r1' is already committed"):
        check_release(loaded_lake, sources, release="r1")


def test_read_text_table__a_short_row_under_a_header_wider_than_a_csv_block_is_refused(tmp_path):
    """Arrow reads CSV in blocks (1 MiB by default) that must each hold a whole row: a header of
    120,000 IDP columns is 1.3 MB, and with it no row was checked and the short one padded."""
    columns = [f"idp{i:06d}" for i in range(120_000)]
    values = ",".join(["1.5"] * len(columns))
    path = tmp_path / "wide.csv"
    path.write_text("eid," + ",".join(columns) + "\n" + f"1000001,{values}\n" + f"1000002,{values[:-8]}\n")
    with pytest.raises(InputError) as error:
        read_text_table(path)
    assert error.value.line == 3 and f"expected {len(columns) + 1} fields" in str(error.value)
