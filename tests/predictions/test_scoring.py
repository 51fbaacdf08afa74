"""The scoring models against hand-computed values (predictions/scoring.py)."""
import math

import numpy as np
import pytest

from predictions import scoring


def financials(**overrides):
    values = dict(total_assets=1000.0, total_liabilities=600.0, current_assets=400.0, current_liabilities=200.0,
                  retained_earnings=150.0, ebit=80.0, net_income=50.0, net_income_prior=40.0,
                  funds_from_operations=120.0)
    values.update(overrides)
    return scoring.Financials(**{k: np.array([v], dtype=float) for k, v in values.items()})


def test_ohlson_o_score_worked_example():
    # Worked by hand from Ohlson (1980), model 1, for a firm with $1,000M of assets
    # (figures in millions of USD, price-level index 680 with 1968 = 100):
    #   SIZE  = ln(1,000,000,000 / 680) = 14.201173      → -0.407  × 14.201173 = -5.779877
    #   TLTA  = 600/1000 = 0.6                          →  6.03   × 0.6       =  3.618
    #   WCTA  = (400-200)/1000 = 0.2                    → -1.43   × 0.2       = -0.286
    #   CLCA  = 200/400 = 0.5                           →  0.0757 × 0.5       =  0.03785
    #   OENEG = 0 (liabilities < assets);  INTWO = 0 (net income positive)
    #   NITA  = 50/1000 = 0.05                          → -2.37   × 0.05      = -0.1185
    #   FUTL  = 120/600 = 0.2                           → -1.83   × 0.2       = -0.366
    #   CHIN  = (50-40)/(50+40) = 0.111111              → -0.521  × 0.111111  = -0.057889
    #   T = -1.32 - 5.779877 + 3.618 - 0.286 + 0.03785 - 0.1185 - 0.366 - 0.057889 = -4.272416
    #   P = 1 / (1 + e^4.272416) = 1 / 72.695 = 0.013756
    f = financials()
    t = scoring.ohlson_o_score(f)
    assert t[0] == pytest.approx(-4.272416, abs=1e-5)
    assert scoring.probability_from_o_score(t)[0] == pytest.approx(0.013756, abs=1e-6)


def test_ohlson_variables_match_the_paper_definitions():
    v = scoring.ohlson_variables(financials())
    assert v["size"][0] == pytest.approx(math.log(1e9 / 680))
    assert (v["tlta"][0], v["wcta"][0], v["clca"][0]) == pytest.approx((0.6, 0.2, 0.5))
    assert (v["oeneg"][0], v["intwo"][0]) == (0.0, 0.0)
    assert (v["nita"][0], v["futl"][0], v["chin"][0]) == pytest.approx((0.05, 0.2, 10 / 90))


def test_ohlson_distress_indicators_and_zero_income_change():
    # liabilities above assets, two loss years, and no income either year
    v = scoring.ohlson_variables(financials(total_liabilities=1200.0, net_income=-5.0, net_income_prior=-3.0))
    assert (v["oeneg"][0], v["intwo"][0]) == (1.0, 1.0)
    assert v["chin"][0] == pytest.approx((-5 + 3) / 8)
    v = scoring.ohlson_variables(financials(net_income=0.0, net_income_prior=0.0))
    assert v["chin"][0] == 0.0


def test_size_units_matter_by_the_documented_amount():
    # the same firm read in thousands instead of millions: T rises by 0.407 × ln(1000) ≈ 2.81
    in_millions = scoring.ohlson_o_score(financials())[0]
    smaller = scoring.ohlson_o_score(financials(total_assets=1.0, total_liabilities=0.6, current_assets=0.4,
                                                current_liabilities=0.2, retained_earnings=0.15, ebit=0.08,
                                                net_income=0.05, net_income_prior=0.04, funds_from_operations=0.12))[0]
    assert smaller - in_millions == pytest.approx(0.407 * math.log(1000), abs=1e-9)


def test_altman_z_double_prime_worked_example():
    # X1 = 0.2 → 6.56 × 0.2 = 1.312;  X2 = 0.15 → 3.26 × 0.15 = 0.489
    # X3 = 0.08 → 6.72 × 0.08 = 0.5376;  X4 = (1000-600)/600 → 1.05 × 0.666667 = 0.7
    # Z'' = 3.0386 → above 2.60: safe
    z = scoring.altman_z_double_prime(financials())
    assert z[0] == pytest.approx(3.0386, abs=1e-9)
    assert scoring.z_double_prime_zone(z)[0] == "safe"


@pytest.mark.parametrize("z, zone", [
    (2.6001, "safe"), (2.60, "grey"), (1.85, "grey"), (1.10, "grey"), (1.0999, "distress"), (-4.0, "distress"),
])
def test_z_double_prime_zone_cut_offs(z, zone):
    assert scoring.z_double_prime_zone(np.array([z]))[0] == zone


def test_probability_is_the_logistic_of_t_without_overflow():
    t = np.array([-1000.0, -2.0, 0.0, 2.0, 1000.0])
    p = scoring.probability_from_o_score(t)
    assert p[0] == 0.0 and p[-1] == 1.0
    assert p[1:4] == pytest.approx([1 / (1 + math.e ** 2), 0.5, 1 / (1 + math.e ** -2)])


def test_quarterly_flows_annualise_times_four():
    quarter = scoring.annualise(np.array([20.0, -2.5]))
    assert quarter.tolist() == [80.0, -10.0]


def test_score_is_vectorised_over_many_rows():
    n = 10_000
    f = scoring.Financials(**{k: np.repeat(v, n) for k, v in vars(financials()).items()})
    scores = scoring.score(f)
    assert scores.o_score.shape == (n,)
    assert np.allclose(scores.o_score, -4.272416, atol=1e-5)
    assert set(scores.risk_band.tolist()) == {"safe"}
