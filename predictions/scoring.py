"""The default-risk scoring models: pure, vectorised functions of numpy arrays.

Each valid row gets

* ``o_score`` — Ohlson's O-score ``T`` and ``probability_of_default`` =
  exp(T) / (1 + exp(T)), the probability of failure within one year;
* ``z_score`` — Altman's Z''-score and ``risk_band``, its zone
  (``safe`` / ``grey`` / ``distress``).

Ohlson (1980) estimates a probability; Altman's zones are the widely used
coarse reading. They disagree at times (different samples, eras and
variables): both scores are returned so that a reader sees which one a
figure came from.

Sources
-------
* J. A. Ohlson, "Financial Ratios and the Probabilistic Prediction of
  Bankruptcy", Journal of Accounting Research 18(1), 1980, pp. 109-131;
  Table 4, model 1 (failure within one year).
* E. I. Altman, "Predicting Financial Distress of Companies: Revisiting the
  Z-Score and ZETA Models" (2000, rev. 2002) and Altman & Hotchkiss,
  "Corporate Financial Distress and Bankruptcy", 3rd ed., Wiley 2006, ch. 11:
  the Z''-score for non-manufacturers and emerging markets.

Choices where sources differ
----------------------------
1. **Units of Ohlson's SIZE.** SIZE = log(total assets / GNP price-level
   index), natural log, with total assets *in dollars* and the index *as a
   number with 1968 = 100* — the paper's own definition. Dividing by the index
   value (≈100 in 1968), not by the index ratio (≈1.0), and taking dollars,
   not millions, is the reading under which the paper's intercept gives the
   sample's failure rate (a few per cent) to an ordinary firm; with assets in
   millions, T rises by 0.407·ln(10⁶) ≈ 5.6 and nearly every firm looks
   bankrupt. Uploads give millions of USD: ``scale_to_dollars`` multiplies by
   10⁶ before the logarithm.
2. **The price-level index.** The GNP deflator is no longer published; its
   successor is the US GDP implicit price deflator (BEA NIPA table 1.1.9,
   FRED series GDPDEF). We use one level for every fiscal year,
   ``PRICE_LEVEL_INDEX_1968_100 = 680``: the 2024 average (≈125.2, 2017 = 100)
   over the 1968 average (≈18.4), ×100. It is approximate (±5 %, which moves T
   by ±0.02); using it for older fiscal years too moves T by 0.407·ln(ratio),
   e.g. ≈0.09 for a 2009 balance sheet (index ≈ 550). Callers may pass another.
3. **Z'' zones.** Without the emerging-market constant (+3.25): Z'' > 2.60
   safe, 1.10 ≤ Z'' ≤ 2.60 grey, Z'' < 1.10 distress (Altman 2002; Altman &
   Hotchkiss 2006). The +3.25 variant rescales the same zones for
   emerging-market bond ratings, which is not what a company's own balance
   sheet in a bulk upload is rated against.
4. **Book equity** for Z'' X4 is total assets − total liabilities (the
   uploads carry no separate equity column).
5. **Quarterly rows** annualise flows ×4 (EBIT, net income, funds from
   operations, and the comparison net income) before the annual coefficients
   are applied; stocks (assets, liabilities, retained earnings) are used as
   they are. CHIN is a ratio of changes and INTWO a sign test, so ×4 leaves
   them unchanged: for quarterly rows they compare a quarter with the same
   quarter a year earlier.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Ohlson (1980), Table 4, model 1: T = sum(coefficient × variable).
OHLSON_INTERCEPT = -1.32
OHLSON_COEFFICIENTS = {
    "size": -0.407,
    "tlta": 6.03,
    "wcta": -1.43,
    "clca": 0.0757,
    "oeneg": -1.72,
    "nita": -2.37,
    "futl": -1.83,
    "intwo": 0.285,
    "chin": -0.521,
}
PRICE_LEVEL_INDEX_1968_100 = 680.0
MILLIONS = 1_000_000.0

# Altman Z'' (non-manufacturers, no emerging-market constant).
ALTMAN_COEFFICIENTS = {"x1": 6.56, "x2": 3.26, "x3": 6.72, "x4": 1.05}
Z_SAFE_ABOVE = 2.60
Z_DISTRESS_BELOW = 1.10

QUARTERS_PER_YEAR = 4.0


@dataclass
class Financials:
    """One array per figure (millions of USD), all the same length; flows are
    for a year (quarterly rows annualise before building this)."""

    total_assets: np.ndarray
    total_liabilities: np.ndarray
    current_assets: np.ndarray
    current_liabilities: np.ndarray
    retained_earnings: np.ndarray
    ebit: np.ndarray
    net_income: np.ndarray
    net_income_prior: np.ndarray
    funds_from_operations: np.ndarray


def annualise(quarterly_flow: np.ndarray) -> np.ndarray:
    """A quarter's flow as a yearly one (×4)."""
    return np.asarray(quarterly_flow, dtype=np.float64) * QUARTERS_PER_YEAR


def ohlson_variables(f: Financials, *, price_level_index: float = PRICE_LEVEL_INDEX_1968_100) -> dict[str, np.ndarray]:
    """Ohlson's nine variables, as defined in the paper (see the module docstring)."""
    ta, tl = f.total_assets, f.total_liabilities
    ni, ni_prior = f.net_income, f.net_income_prior
    with np.errstate(divide="ignore", invalid="ignore"):
        denominator = np.abs(ni) + np.abs(ni_prior)
        chin = np.where(denominator == 0, 0.0, (ni - ni_prior) / np.where(denominator == 0, 1.0, denominator))
        return {
            "size": np.log(ta * MILLIONS / price_level_index),
            "tlta": tl / ta,
            "wcta": (f.current_assets - f.current_liabilities) / ta,
            "clca": f.current_liabilities / f.current_assets,
            "oeneg": (tl > ta).astype(np.float64),
            "nita": ni / ta,
            "futl": f.funds_from_operations / tl,
            "intwo": ((ni < 0) & (ni_prior < 0)).astype(np.float64),
            "chin": chin,
        }


def ohlson_o_score(f: Financials, *, price_level_index: float = PRICE_LEVEL_INDEX_1968_100) -> np.ndarray:
    """Ohlson's T (the O-score)."""
    variables = ohlson_variables(f, price_level_index=price_level_index)
    score = np.full(len(f.total_assets), OHLSON_INTERCEPT, dtype=np.float64)
    for name, coefficient in OHLSON_COEFFICIENTS.items():
        score += coefficient * variables[name]
    return score


def probability_from_o_score(score: np.ndarray) -> np.ndarray:
    """exp(T) / (1 + exp(T)), computed without overflow for any T."""
    score = np.asarray(score, dtype=np.float64)
    return np.where(score >= 0, 1.0 / (1.0 + np.exp(-np.abs(score))), np.exp(-np.abs(score)) / (1.0 + np.exp(-np.abs(score))))


def altman_z_double_prime(f: Financials) -> np.ndarray:
    """Altman's Z'' = 6.56·X1 + 3.26·X2 + 6.72·X3 + 1.05·X4."""
    ta, tl = f.total_assets, f.total_liabilities
    c = ALTMAN_COEFFICIENTS
    return (
        c["x1"] * (f.current_assets - f.current_liabilities) / ta
        + c["x2"] * f.retained_earnings / ta
        + c["x3"] * f.ebit / ta
        + c["x4"] * (ta - tl) / tl
    )


def z_double_prime_zone(z: np.ndarray) -> np.ndarray:
    """``safe`` above 2.60, ``distress`` below 1.10, ``grey`` in between (inclusive)."""
    z = np.asarray(z, dtype=np.float64)
    return np.where(z > Z_SAFE_ABOVE, "safe", np.where(z < Z_DISTRESS_BELOW, "distress", "grey"))


@dataclass
class Scores:
    o_score: np.ndarray
    probability_of_default: np.ndarray
    z_score: np.ndarray
    risk_band: np.ndarray


def score(f: Financials, *, price_level_index: float = PRICE_LEVEL_INDEX_1968_100) -> Scores:
    """Both models for every row of ``f`` (inputs already validated: positive
    total assets, total liabilities and current assets)."""
    o = ohlson_o_score(f, price_level_index=price_level_index)
    z = altman_z_double_prime(f)
    return Scores(o_score=o, probability_of_default=probability_from_o_score(o), z_score=z, risk_band=z_double_prime_zone(z))
