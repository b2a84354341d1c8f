"""The main job end to end: synth → ingest → SQL → GWAS → EWAS → GxE → results → clumps → meta → PRS → h², rg
→ kinship, mixed model, ComBat across sites, SNP × SNP interactions, a multivariate association (CCA), CNVs, checked
against the truth."""

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from biolake.demo import run_demo

pytestmark = pytest.mark.slow


def test_run_demo__recovers_planted_effects_and_keeps_nulls_calm(tmp_path):
    catalog = yaml.safe_load((Path(__file__).parents[1] / "catalog.yaml").read_text())
    catalog["lake"]["root"] = str(tmp_path / "lake")
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(catalog))
    lines: list[str] = []
    run_demo(tmp_path / "catalog.yaml", progress=lambda step, done, total: None, echo=lines.append)
    planted = [line for line in lines if line.startswith("  rs") and " × " not in line]
    assert len(planted) == 5 and all(line.endswith("recovered") for line in planted), planted
    assert any(line.startswith("null IDPs with any hit at p < 5e-8: 0 of 10") for line in lines), lines
    assert "planted CpG~stress effects recovered at p < 9e-8: 10 of 10" in lines, lines[-3:]
    interaction = [line for line in lines if " × stress → " in line]
    assert len(interaction) == 1 and interaction[0].endswith("recovered"), interaction
    assert any(line.startswith("null IDPs' interaction hits at p < 5e-8: 0 ") for line in lines), lines[-3:]
    assert any(line.endswith("the planted variants lie in a lead locus for 5 of 5") for line in lines), lines
    clumped = next(line for line in lines if "clumps (index p ≤ 5e-8" in line)
    assert "the planted variant lies in a clump of its IDP for 5 of 5" in clumped, clumped
    collapsed = next(line for line in lines if line.startswith("the planted IDPs' "))
    assert "into one clump per planted effect for 5 of 5" in collapsed, collapsed
    nulls = next(line for line in lines if line.startswith("null IDPs with any hit"))
    low, high = (float(value) for value in nulls.rstrip(")").split(", from ")[1].split(" to "))
    assert 0.85 < low and high < 1.15, nulls   # no long-range LD to swing λGC
    assert "planted SNP→IDP effects at p < 5e-8 in the meta-analysis: 5 of 5" in lines, lines[-3:]
    assert (tmp_path / "out" / "demo_idps.html").exists() and len(list((tmp_path / "out" / "plots").glob("*.png"))) > 2
    scored = next(line for line in lines if line.startswith("correlation with "))
    assert float(scored.split(": ")[-1].split(" ")[0]) > 0.1, scored   # the p ≤ 5e-8 score tracks its IDP
    held_out = [line for line in lines if line.split()[2:3] in (["unclumped"], ["clumped"])]
    assert len(held_out) == 4 and all(-0.2 < float(r) < 0.8 for line in held_out for r in line.split()[-5:]), held_out
    oligogenic = next(line for line in lines if " is oligogenic: " in line)
    best = next(line for line in lines if line.startswith(oligogenic.split()[0] + "'s best scores in the held-out"))
    print(oligogenic, *held_out, best, sep="\n")   # #29: the clumped (C+T) score beats the unclumped one
    clumped, unclumped = (float(value) for value in re.findall(r"clumped r (-?[\d.]+)", best))
    assert clumped > unclumped + 0.02 and clumped > 0.3, best
    planted = next(line for line in lines if " IDPs heritable, planted h² from " in line)
    assert planted.startswith("40 of 50 IDPs heritable, planted h² from 0.05 to 0.60") and "; 10 null IDPs" in planted
    assert sum(line.startswith("  rg ") and line.endswith(tuple("123456789")) for line in lines) >= 5, lines[-20:]
    estimated = next(line for line in lines if line.startswith("Haseman–Elston h² of the 50 IDPs over "))
    inside = int(estimated.split("95 % interval for ")[1].split(" of ")[0])
    assert inside >= 45, estimated   # #30: planted h² inside the 95 % interval for ≥ 90 % of IDPs
    disorder = next(line for line in lines if line.startswith("disorder h² by LD score regression"))
    assert disorder.endswith(", inside the 95 % interval"), disorder   # LD scores of common variants (--maf 0.05)
    signs = next(line for line in lines if line.startswith("genetic correlations by LD score regression"))
    recovered, pairs, undefined = (int(word) for word in re.findall(r"(\d+) (?:of|pairs|without)", signs))
    assert recovered == pairs and undefined == 0, signs   # #30: every planted rg sign recovered (14 of 14)
    assert all((tmp_path / "out" / f"{name}.html").exists() for name in ("demo_h2", "demo_rg"))
    relatives = [line for line in lines if line.startswith(("kinship: ", "unrelated set ", "λGC of "))]
    print("\n".join(relatives))   # the figures of #31: the planted pedigree recovered, λGC plain vs mixed
    found = {relation: (int(n), int(of))
             for n, of, relation in re.findall(r"(\d+)/(\d+) ([a-z -]+?) pairs", "\n".join(relatives))}
    assert found["sibling"][0] == found["sibling"][1] >= 100, relatives   # 30 % related: every first-degree pair
    assert found["parent-offspring"][0] == found["parent-offspring"][1] >= 100, relatives   # in KING's first degree
    assert found["avuncular"][0] >= 0.8 * found["avuncular"][1], relatives   # KING's 2nd degree
    assert found["first cousins"][0] >= 0.5 * found["first cousins"][1], relatives   # 3rd: the noisiest
    unrelated = next(line for line in relatives if line.startswith("unrelated set (--unrelated 0.0884): "))
    assert 1500 < int(unrelated.split(": ")[1].split(" of ")[0].replace(",", "")) < 1900, unrelated
    (plain, mixed), (null_plain, null_mixed) = ([float(value) for value in re.findall(r"(?:linear|\)) (\d\.\d+)", line)]
                                                for line in relatives[-2:])
    assert plain > 1.2 and mixed > 1.2, relatives[-2]   # LOCO keeps the polygenic signal (its calibration: test_loco)
    assert 0.9 < null_plain < 1.1 and 0.9 < null_mixed < 1.1, relatives[-1]   # and nothing from a null IDP
    harmonised = next(line for line in lines if " planted IDPs of " in line and "across 4 sites" in line)
    before, after = (float(value) / 100 for value in re.findall(r"explains ([\d.]+)% of their variance before "
                                                                 r"harmonisation, ([\d.]+)% after", harmonised)[0])
    print(harmonised)   # the figures of #33: the sites' share of the planted IDPs' variance, before and after
    assert before > 0.005 and after < before / 10, harmonised   # ComBat removes the synthetic sites' offsets (1.15 % → 0.05 %)
    assert (tmp_path / "out" / "plots" / "sites_harmonized.png").exists()
    scales = next(line for line in lines if line.startswith("scanner scale by site, planted"))
    planted, estimated = np.log(np.array(re.findall(r"\w+ (\d\.\d+) → (\d\.\d+)", scales), dtype=float)).T
    print(scales)   # ComBat's scale per site recovers the synthetic scanners' noise multipliers (towards 1: diluted)
    assert len(planted) == 4 and np.corrcoef(planted, estimated)[0, 1] > 0.9, scales
    assert "planted SNP→IDP effects at p < 5e-8 in a GWAS of the harmonised IDPs: 5 of 5" in lines, lines[-3:]
    interactions = next(line for line in lines if line.startswith("planted SNP×SNP interactions at p < 5e-8: "))
    print(interactions)   # the figures of #35: each planted pair found by epistasis --with, and what else passed
    assert interactions.startswith("planted SNP×SNP interactions at p < 5e-8: 2 of 2;") and interactions.endswith(
        " 0 elsewhere"), interactions
    regions = {line.split()[0]: line for line in lines if line.startswith(("planted region chr", "null region chr"))}
    print("\n".join(regions.values()))   # the figures of #36: CCA finds the planted region out of sample, not the null
    (planted_cv, planted_p, planted_gwas), (null_cv, null_p, null_gwas) = (
        [float(value) for value in re.search(r"(-?[\d.]+) held out .* permutation p ([\d.e-]+); "
                                             r"the GWAS's smallest p there: ([\d.e-]+)", regions[which]).groups()]
        for which in ("planted", "null"))
    assert planted_cv > 0.1 and planted_p < 0.01 and planted_gwas > 5e-8, regions["planted"]   # each variant too weak
    assert abs(null_cv) < 0.1 and null_p > 0.01, regions["null"]
    assert all((tmp_path / "out" / path).exists() for path in ("demo_cca.html", "plots/demo_cca/correlations.png"))
    cnv = [line for line in lines if line.startswith("  ") and " (planted " in line and " carriers " in line]
    print("\n".join(cnv))   # the figures of #34: each planted locus's carriers and its effect on its IDP
    assert len(cnv) == 3 and all(line.endswith("recovered") and not line.endswith("not recovered") for line in cnv)
    assert all(re.search(r"carriers (\d+) del, (\d+) dup \(planted \1, \2\)", line) for line in cnv), cnv
    assert any(line.startswith("planted CNV effects past the threshold: 3 of 3;") for line in lines), lines[-3:]
    scan = next(line for line in lines if line.startswith("CNV scan (--scan-kb "))
    assert scan.endswith("lies in its planted locus for 3 of 3"), scan
