"""Recurrent genomic-disorder CNV loci, as ClinGen's Dosage Sensitivity curation defines them, in both builds.

Coordinates are ClinGen's curated region list (both builds matched by ISCA id; its download of 25 April 2026), 1-based
and inclusive, unchanged; an older ClinGen release (2021) agrees for all but Williams–Beuren, whose end moved 1 bp.
Other published definitions (DECIPHER, the UK Biobank CNV list of Owen et al. 2018) overlap each of them and differ
at the edges (DECIPHER's 1q21.1 distal is ~0.5 Mb longer; its 22q11.2 starts ~0.1 Mb later): carriers are called by
reciprocal overlap (:func:`biolake.stats.cnv.reciprocal_overlap`), which such edges barely move. ``biolake cnv
carriers --loci FILE`` takes other definitions.
"""

from __future__ import annotations

from typing import NamedTuple

BUILDS = ("hg19", "hg38")


class Locus(NamedTuple):
    """One recurrent CNV locus: its short name, what it is, its stretch in each build (chromosome, first and last base
    pair) and where the coordinates come from."""

    name: str
    description: str
    hg19: tuple[str, int, int]
    hg38: tuple[str, int, int]
    source: str

    def stretch(self, build: str) -> tuple[str, int, int]:
        """Its chromosome, start and end in ``build`` (hg19 or hg38)."""
        return self.hg19 if build == "hg19" else self.hg38


GENOMIC_DISORDER_LOCI = (
    Locus("1q21.1_distal_BP3-BP4", "1q21.1 distal recurrent region (BP3-BP4; GJA5)",
          ("1", 146_577_486, 147_394_506), ("1", 147_105_904, 147_917_509), "ClinGen ISCA-37421"),
    Locus("15q11.2_BP1-BP2", "15q11.2 recurrent region BP1-BP2 (NIPA1, CYFIP1)",
          ("15", 22_832_519, 23_090_897), ("15", 22_782_170, 23_040_134), "ClinGen ISCA-37448"),
    Locus("16p11.2_proximal_BP4-BP5", "16p11.2 proximal recurrent region BP4-BP5 (~600 kb; TBX6)",
          ("16", 29_649_997, 30_199_852), ("16", 29_638_676, 30_188_531), "ClinGen ISCA-37400"),
    Locus("16p11.2_distal_BP2-BP3", "16p11.2 distal recurrent region BP2-BP3 (~220 kb; SH2B1)",
          ("16", 28_822_635, 29_046_499), ("16", 28_811_314, 29_035_178), "ClinGen ISCA-37486"),
    Locus("22q11.2_A-D", "22q11.2 DiGeorge/VCFS proximal recurrent region LCR22A-LCR22D (TBX1)",
          ("22", 18_912_231, 21_465_672), ("22", 18_924_718, 21_111_383), "ClinGen ISCA-37446"),
    Locus("1q21.1_TAR_BP2-BP3", "1q21.1 proximal / TAR syndrome recurrent region (BP2-BP3; RBM8A)",
          ("1", 145_386_507, 145_748_064), ("1", 145_686_999, 146_048_495), "ClinGen ISCA-37428"),
    Locus("3q29", "3q29 recurrent region (DLG1)",
          ("3", 195_756_054, 197_344_662), ("3", 196_029_183, 197_617_791), "ClinGen ISCA-37443"),
    Locus("7q11.23_WBS", "7q11.23 Williams-Beuren syndrome proximal recurrent region (ELN)",
          ("7", 72_744_455, 74_142_511), ("7", 73_330_452, 74_728_173), "ClinGen ISCA-37392"),
    Locus("15q13.3_BP4-BP5", "15q13.3 recurrent region BP4-BP5 (CHRNA7)",
          ("15", 31_192_889, 32_445_405), ("15", 30_900_686, 32_153_204), "ClinGen ISCA-37411"),
    Locus("16p13.11", "16p13.11 recurrent region (MYH11, NDE1)",
          ("16", 15_511_711, 16_292_265), ("16", 15_417_854, 16_198_408), "ClinGen ISCA-37415"),
    Locus("17q12", "17q12 recurrent region (RCAD; HNF1B)",
          ("17", 34_815_072, 36_192_489), ("17", 36_458_167, 37_854_616), "ClinGen ISCA-37432"),
)
