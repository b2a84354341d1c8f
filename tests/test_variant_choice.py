"""--region, --extract and --exclude (#32 item 2): the variants plink2 chooses from the same files, read from
only the row groups that hold them."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from plink2_glm import plink2

from biolake.cli import main
from biolake.gwas import GwasSettings, run_gwas
from biolake.ingest.variant_lists import read_variant_list
from biolake.lake.chromosomes import genomic_range
from biolake.lake.errors import BiolakeError, InputError
from biolake.queries.blocks import genotype_blocks
from biolake.queries.variants import VariantChoice, VariantList

COVARIATES = ["age", "sex"]


def bim(release_folder: Path) -> list[list[str]]:
    return [line.split() for line in (release_folder / "genotypes.bim").read_text().splitlines()]


def variant_list(flag: str, path: Path) -> VariantList:
    ids, ranges = read_variant_list(path)
    return VariantList(flag, str(path), ids, tuple(ranges))


def their_variants(fileset: Path, folder: Path, *args: str) -> list[str]:
    """The variants plink2 keeps of ``fileset`` (a release folder's genotypes, or a prefix) given ``args``."""
    prefix = fileset / "genotypes" if fileset.is_dir() else fileset
    plink2("--bfile", str(prefix), *args, "--write-snplist", "--out", str(folder / "chosen"))
    return (folder / "chosen.snplist").read_text().split()


def our_variants(lake, name: str, **choice) -> list[str]:
    run_gwas(lake, GwasSettings(name=name, phenotypes=["25001-2.0"], covariates=COVARIATES, **choice))
    rows = lake.results_dataset(name).to_table(columns=["variant_id", "chrom", "pos"]).to_pylist()
    order = {variant: i for i, variant in enumerate(row[1] for row in bim_rows(lake))}
    return sorted((row["variant_id"] for row in rows), key=order.__getitem__)


def bim_rows(lake) -> list[tuple[str, str]]:
    variants = lake.read("variants", columns=["variant_index", "variant_id", "chrom"]).sort_by("variant_index")
    return list(zip(variants.column("chrom").to_pylist(), variants.column("variant_id").to_pylist()))


def test_extract_ids__plink2_extract_and_an_unknown_id_warns(gwas_lake, release_folder, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("# every fifth variant\n" + "".join(f"{row[1]}\n" for row in bim(release_folder)[::5])
                   + "rs_not_here\n")
    theirs = their_variants(release_folder, tmp_path, "--extract", str(ids))
    with pytest.warns(UserWarning, match=rf"--extract {ids}: 1 of its 301 ids are not variants of the release, "
                                         r"e.g. 'rs_not_here' \(line 302\)"):
        ours = our_variants(gwas_lake, "extract_ids", extract=variant_list("--extract", ids))
    assert ours == theirs and len(ours) == 300


def test_extract_ranges_and_exclude_bed__plink2_range_and_bed0(gwas_lake, release_folder, tmp_path):
    rows = bim(release_folder)
    chr2 = [int(row[3]) for row in rows if row[0] == "2"]
    ranges = [("1", int(rows[10][3]), int(rows[60][3])), ("2", chr2[5], chr2[40]), ("22", 1, 10**9)]
    ours_file, their_file = tmp_path / "ranges.txt", tmp_path / "ranges.plink"
    ours_file.write_text("".join(f"chr{c}:{a:,}-{b:,}\n" for c, a, b in ranges))
    their_file.write_text("".join(f"{c}\t{a}\t{b}\tr{k}\n" for k, (c, a, b) in enumerate(ranges)))
    hole = f"chr1\t{int(rows[20][3]) - 1}\t{int(rows[30][3])}\n"   # 0-based: the first variant in it is left out
    bed, their_bed = tmp_path / "holes.bed", tmp_path / "holes_plink.bed"
    bed.write_text("track name=holes\n" + hole)    # a UCSC track line (plink2 reads none)
    their_bed.write_text(hole)
    theirs = their_variants(release_folder, tmp_path, "--extract", "range", str(their_file),
                            "--exclude", "bed0", str(their_bed))
    ours = our_variants(gwas_lake, "extract_ranges", extract=variant_list("--extract", ours_file),
                        exclude=variant_list("--exclude", bed))
    assert ours == theirs and rows[20][1] not in ours and rows[19][1] in ours


def test_region_with_chrom_and_lists__plink2_from_bp_to_bp(gwas_lake, release_folder, tmp_path):
    chr3 = [row for row in bim(release_folder) if row[0] == "3"]
    start, end = int(chr3[10][3]), int(chr3[70][3])
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"{row[1]}\n" for row in chr3[::2]))
    out = tmp_path / "out.txt"
    out.write_text("".join(f"{row[1]}\n" for row in chr3[::6]))
    # plink2 refuses --from-bp/--to-bp with --extract (union or intersection?): the region first, then the lists
    plink2("--bfile", str(release_folder / "genotypes"), "--chr", "3", "--from-bp", str(start), "--to-bp", str(end),
           "--make-bed", "--out", str(tmp_path / "region"))
    theirs = their_variants(tmp_path / "region", tmp_path, "--extract", str(ids), "--exclude", str(out))
    region = f"chr3:{start}-{end}"
    ours = our_variants(gwas_lake, "region", chromosomes=["1-3"], regions=[region],
                        extract=variant_list("--extract", ids), exclude=variant_list("--exclude", out))
    assert ours == theirs and 10 < len(ours) < 40
    choice = VariantChoice(regions=(genomic_range(region),))
    assert len(genotype_blocks(gwas_lake, choice=choice)) == 1 < len(genotype_blocks(gwas_lake))
    record = gwas_lake.results_provenance("region")["settings"]
    assert record["regions"] == [f"3:{start}-{end}"] and record["extract"]["ids"] == len(chr3[::2])


def test_cli__region_and_lists_reach_gwas_and_gxe(gwas_lake, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("rs1002\nrs1016\n")
    for command in (["gwas"], ["gxe", "--exposure", "stress"]):
        result = CliRunner().invoke(main, [*command, "--lake", str(gwas_lake.location.root), "--pheno", "25001-2.0",
                                           "--covar", "age,sex,stress", "--region", "1:1-30000000", "--extract",
                                           str(ids), "--maf", "0", "--name", f"cli_{command[0]}", "--replace"])
        assert result.exit_code == 0, result.output
        tested = gwas_lake.results_dataset(f"cli_{command[0]}").to_table(columns=["variant_id"]).column(0)
        assert sorted(set(tested.to_pylist())) == ["rs1002", "rs1016"]


@pytest.mark.parametrize("content, name, message", [
    ("rs1\n1:200-100\n", "bad.txt", r"bad.txt, line 2: '1:200-100': a range runs from position 1 or more"),
    ("rs1\nchr99:1-5\n", "bad.txt", r"bad.txt, line 2: 'chr99:1-5' is not a range CHR:FROM-TO"),
    ("chr1\t500\t100\n", "bad.bed", r"bad.bed, line 1: expected a BED line CHROM START END"),
    ("# nothing\n", "empty.txt", r"empty.txt: lists no variant id or range"),
])
def test_variant_list__a_malformed_line_names_the_file_and_line(tmp_path, content, name, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_variant_list(path)
    result = CliRunner().invoke(main, ["gwas", "--lake", str(tmp_path / "nolake"), "--pheno", "y", "--covar", "age",
                                       "--extract", str(path)])
    assert re.fullmatch(f"error: {re.escape(str(tmp_path))}/{message}.*", result.output.strip()), result.output


def test_choice__nothing_chosen_is_one_line_naming_the_flags(gwas_lake, tmp_path):
    with pytest.raises(BiolakeError, match=r"^no variant on chromosomes 22 is chosen by --region 1:1-1000$"):
        run_gwas(gwas_lake, GwasSettings(name="none", phenotypes=["25001-2.0"], covariates=COVARIATES,
                                         chromosomes=["22"], regions=["1:1-1000"]))


def test_kinship_and_h2__read_only_the_chosen_variants(gwas_lake, release_folder, tmp_path):
    """The jobs that read genotypes besides the scans take the same choice: KING-robust kinship over an --extract
    list equals plink2 --make-king-table --extract's, and h2's relationship matrix counts the region's variants."""
    rows = bim(release_folder)
    ids = tmp_path / "pruned.prune.in"   # what plink2 --indep-pairwise writes, one id a line
    ids.write_text("".join(f"{row[1]}\n" for row in rows[::3]))
    kept = their_variants(release_folder, tmp_path, "--extract", str(ids))
    result = CliRunner().invoke(main, ["kinship", "--lake", str(gwas_lake.location.root), "--extract", str(ids),
                                       "--min", "0", "--name", "kin_extract", "--out", str(tmp_path / "kin.tsv")])
    assert result.exit_code == 0, result.output
    plink2("--bfile", str(release_folder / "genotypes"), "--extract", str(ids), "--make-king-table", "counts",
           "--out", str(tmp_path / "king"))
    ours = {tuple(fields[:2]): fields[2] for fields in (line.split("\t") for line in
                                                        (tmp_path / "kin.tsv").read_text().splitlines()[1:])}
    theirs = {(fields[1], fields[3]): fields[4] for fields in (line.split("\t") for line in
                                                              (tmp_path / "king.kin0").read_text().splitlines()[1:])}
    assert len(ours) > 1000 and all(theirs[pair] == nsnp for pair, nsnp in ours.items())   # NSNP per pair
    assert f"over {len(kept):,} autosomal variants" in result.output
    region_rows = [row for row in rows if row[0] == "2"][5:60]
    region = f"2:{region_rows[0][3]}-{region_rows[-1][3]}"
    result = CliRunner().invoke(main, ["h2", "--lake", str(gwas_lake.location.root), "--pheno", "25001-2.0", "--covar",
                                       "age,sex", "--region", region, "--maf", "0", "--max-missing", "1",
                                       "--name", "h2_region"])
    assert result.exit_code == 0, result.output
    assert f"over {len(region_rows):,} variants" in result.output


def test_ewas__refuses_a_variant_choice(tmp_path):
    from biolake.ewas import EwasSettings

    with pytest.raises(BiolakeError, match=r"^--region 1:1-100 chooses genotyped variants \(gwas, gxe, h2, kinship\); "
                                           r"ewas reads CpGs and does not take it$"):
        EwasSettings(name="e", exposures=["stress"], covariates=["age"], regions=["1:1-100"])


def test_variant_list__a_header_naming_the_column_is_skipped(tmp_path):
    path = tmp_path / "common.csv"
    path.write_text("variant_id\nrs1\nrs2 rs3\n")   # biolake sql --format csv's header; ids as plink2 reads them
    assert read_variant_list(path) == ({"rs1": 2, "rs2": 3, "rs3": 3}, [])
