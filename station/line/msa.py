"""Gauge R&R by the ANOVA method (AIAG MSA, 4th ed., chapter III section B), pure arithmetic.

A crossed study: ``p`` parts (packs), each measured ``r`` times (trials) by each of ``a``
appraisers (here: fixtures, operators or stations). Two-way ANOVA with interaction:

    SS_P = a·r·Σ(part mean − grand)²          df p − 1
    SS_A = p·r·Σ(appraiser mean − grand)²     df a − 1
    SS_AP = r·ΣΣ(cell − part − appr + grand)² df (p − 1)(a − 1)
    SS_E = ΣΣΣ(value − cell mean)²            df p·a·(r − 1)

When the part × appraiser interaction is not significant (F = MS_AP / MS_E has p-value ≥
``alpha``, default 0.05) it is pooled with the error, as the AIAG example does:
MS_pool = (SS_AP + SS_E) / (df_AP + df_E). Variance components (negative estimates → 0):

    repeatability (EV²)   = MS_E                     (MS_pool when pooled)
    interaction           = (MS_AP − MS_E) / r        (0 when pooled)
    appraiser             = (MS_A − MS_AP) / (p·r)    (MS_pool instead of MS_AP when pooled)
    part (PV²)            = (MS_P − MS_AP) / (a·r)    (idem)
    reproducibility (AV²) = appraiser + interaction;  GRR² = EV² + AV²;  TV² = GRR² + PV²

%GRR = 100·GRR/TV (of total variation, the σ ratio), ndc = ⌊1.41·PV/GRR⌋, %tolerance =
100·6·GRR/(USL − LSL) when both limits are known. Verdict by %GRR: < 10 % acceptable, 10–30 %
conditionally acceptable, > 30 % not acceptable. AIAG also asks for ndc ≥ 5: reported beside.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

MIN_PARTS, MIN_APPRAISERS, MIN_TRIALS = 5, 2, 2
RECOMMENDED = (10, 3, 3)  # parts, appraisers, trials (AIAG's usual study)


class DesignProblem(ValueError):
    """The data do not make a study that can be computed."""


@dataclass
class AnovaRow:
    source: str
    df: int
    ss: float
    ms: float
    f: float | None = None
    p: float | None = None


@dataclass
class GaugeStudy:
    parts: int
    appraisers: int
    trials: int
    table: list[AnovaRow]
    pooled: bool
    var: dict[str, float]  # repeatability, appraiser, interaction, reproducibility, grr, part, total
    notes: list[str] = field(default_factory=list)
    tolerance: float | None = None

    def sd(self, component: str) -> float:
        return math.sqrt(self.var[component])

    def pct_tv(self, component: str) -> float | None:
        total = self.sd("total")
        return 100.0 * self.sd(component) / total if total > 0 else None

    def pct_contribution(self, component: str) -> float | None:
        total = self.var["total"]
        return 100.0 * self.var[component] / total if total > 0 else None

    @property
    def pct_grr(self) -> float | None:
        return self.pct_tv("grr")

    @property
    def pct_tolerance(self) -> float | None:
        return 600.0 * self.sd("grr") / self.tolerance if self.tolerance else None

    @property
    def ndc(self) -> int | None:
        grr = self.sd("grr")
        return math.floor(1.41 * self.sd("part") / grr) if grr > 0 else None

    @property
    def verdict(self) -> str:
        pct = self.pct_grr
        if pct is None:
            return "not computed"
        if pct < 10:
            return "acceptable"
        if pct <= 30:
            return "conditionally acceptable"
        return "not acceptable"


def anova_grr(cells: Mapping[tuple[Hashable, Hashable], Sequence[float]], *, alpha: float = 0.05,
              tolerance: float | None = None) -> GaugeStudy:
    """The study of ``cells[(part, appraiser)] = trial values``; raises DesignProblem."""
    parts = sorted({k[0] for k in cells}, key=str)
    apprs = sorted({k[1] for k in cells}, key=str)
    p, a = len(parts), len(apprs)
    notes: list[str] = []
    missing = [(pt, ap) for pt in parts for ap in apprs if len(cells.get((pt, ap), ())) == 0]
    if missing:
        raise DesignProblem(f"not crossed: part {missing[0][0]} has no trial by {missing[0][1]} "
                            f"({len(missing)} empty cells)")
    counts = {len(v) for v in cells.values()}
    r = min(counts)
    if len(counts) > 1:
        notes.append(f"unbalanced ({min(counts)}..{max(counts)} trials per cell): the first {r} "
                     "of each cell are used")
    if p < MIN_PARTS or a < MIN_APPRAISERS or r < MIN_TRIALS:
        raise DesignProblem(f"{p} parts × {a} appraisers × {r} trials: a study needs at least "
                            f"{MIN_PARTS} parts, {MIN_APPRAISERS} appraisers and {MIN_TRIALS} trials")
    rp, ra, rr = RECOMMENDED
    if p < rp or a < ra or r < rr:
        notes.append(f"{p} parts × {a} appraisers × {r} trials is below the usual AIAG study "
                     f"({rp} × {ra} × {rr}): the estimates are less certain")
    x = {(pt, ap): [float(v) for v in cells[(pt, ap)][:r]] for pt in parts for ap in apprs}
    n = p * a * r
    grand = sum(sum(v) for v in x.values()) / n
    cell = {k: sum(v) / r for k, v in x.items()}
    part_m = {pt: sum(cell[(pt, ap)] for ap in apprs) / a for pt in parts}
    appr_m = {ap: sum(cell[(pt, ap)] for pt in parts) / p for ap in apprs}
    ss_p = a * r * sum((m - grand) ** 2 for m in part_m.values())
    ss_a = p * r * sum((m - grand) ** 2 for m in appr_m.values())
    ss_ap = r * sum((cell[(pt, ap)] - part_m[pt] - appr_m[ap] + grand) ** 2
                    for pt in parts for ap in apprs)
    ss_e = sum((v - cell[k]) ** 2 for k, vs in x.items() for v in vs)
    df_p, df_a, df_ap, df_e = p - 1, a - 1, (p - 1) * (a - 1), p * a * (r - 1)
    ms_p, ms_a, ms_ap, ms_e = ss_p / df_p, ss_a / df_a, ss_ap / df_ap, ss_e / df_e
    f_ap = ms_ap / ms_e if ms_e > 0 else math.inf
    p_ap = f_sf(f_ap, df_ap, df_e) if math.isfinite(f_ap) else 0.0
    pooled = p_ap >= alpha
    if pooled:
        denom = (ss_ap + ss_e) / (df_ap + df_e)
        repeat, inter = denom, 0.0
    else:
        denom = ms_ap
        repeat, inter = ms_e, max(0.0, (ms_ap - ms_e) / r)
    appraiser = max(0.0, (ms_a - denom) / (p * r))
    part = max(0.0, (ms_p - denom) / (a * r))
    f_p, f_a = (ms_p / denom, ms_a / denom) if denom > 0 else (math.inf, math.inf)
    df_den = df_ap + df_e if pooled else df_ap
    table = [AnovaRow("part", df_p, ss_p, ms_p, f_p, f_sf(f_p, df_p, df_den)),
             AnovaRow("appraiser", df_a, ss_a, ms_a, f_a, f_sf(f_a, df_a, df_den)),
             AnovaRow("part × appraiser", df_ap, ss_ap, ms_ap, f_ap, p_ap),
             AnovaRow("repeatability", df_e, ss_e, ms_e),
             AnovaRow("total", n - 1, ss_p + ss_a + ss_ap + ss_e, (ss_p + ss_a + ss_ap + ss_e) / (n - 1))]
    if pooled:
        notes.append(f"part × appraiser interaction not significant (p = {p_ap:.3g} ≥ {alpha}): "
                     "pooled into repeatability")
    var = {"repeatability": repeat, "appraiser": appraiser, "interaction": inter,
           "reproducibility": appraiser + inter}
    var["grr"] = var["repeatability"] + var["reproducibility"]
    var["part"] = part
    var["total"] = var["grr"] + part
    study = GaugeStudy(p, a, r, table, pooled, var, notes, tolerance)
    if study.ndc is not None and study.ndc < 5:
        notes.append(f"ndc {study.ndc} < 5: the gauge cannot tell enough classes of parts apart "
                     "(or the parts do not span the process)")
    return study


# -- the F distribution's upper tail, from the regularized incomplete beta function ---------------
def f_sf(f: float, d1: int, d2: int) -> float | None:
    """P(F ≥ f) for F with (d1, d2) degrees of freedom."""
    if not math.isfinite(f):
        return 0.0 if f > 0 else None
    if f <= 0:
        return 1.0
    return betainc(d2 / 2, d1 / 2, d2 / (d2 + d1 * f))


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta I_x(a, b) (continued fraction, modified Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    ln_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point
        return 1.0 - betainc(b, a, 1.0 - x)
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return math.exp(ln_front) * h / a
