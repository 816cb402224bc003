from __future__ import annotations

import math

import numpy as np
import pytest

from models.calibration import Calibration, calibrated_ece_floor, expected_calibration_error, fit_calibration


class TestCalibration:
    def test_identity_map_is_the_sigmoid(self) -> None:
        cal = Calibration()
        assert cal.p_comply(0.0) == pytest.approx(0.5)
        assert cal.p_comply(2.0) == pytest.approx(1 / (1 + math.exp(-2.0)))

    def test_temperature_and_bias(self) -> None:
        cal = Calibration(temperature=2.0, bias=0.5)
        assert cal.p_comply(3.0) == pytest.approx(1 / (1 + math.exp(-(1.5 + 0.5))))

    def test_vectorised_matches_scalar_and_does_not_overflow(self) -> None:
        cal = Calibration(temperature=0.5, bias=-1.0)
        rewards = np.array([-1e4, -3.0, 0.0, 3.0, 1e4])
        probs = cal.p_comply(rewards)
        assert isinstance(probs, np.ndarray)
        assert probs.tolist() == pytest.approx([cal.p_comply(float(r)) for r in rewards])
        assert probs[0] == 0.0 and probs[-1] == 1.0
        assert np.all(np.diff(probs) >= 0)

    def test_scalar_returns_python_float(self) -> None:
        assert type(Calibration().p_comply(1.0)) is float

    @pytest.mark.parametrize("temperature", [0.0, -1.0, math.inf, math.nan])
    def test_rejects_bad_temperature(self, temperature: float) -> None:
        with pytest.raises(ValueError, match="temperature"):
            Calibration(temperature=temperature)

    def test_rejects_non_finite_bias(self) -> None:
        with pytest.raises(ValueError, match="bias"):
            Calibration(bias=math.inf)


class TestIsotonicKnots:
    CAL = Calibration(knots=((0.2, 0.1), (0.5, 0.3), (0.8, 0.9)))

    def test_interpolates_the_sigmoid_probability_between_knots(self) -> None:
        assert self.CAL.p_comply(0.0) == pytest.approx(0.3)  # sigmoid(0) = 0.5, a knot
        reward = math.log(0.65 / 0.35)  # sigmoid = 0.65, halfway from 0.5 to 0.8
        assert self.CAL.p_comply(reward) == pytest.approx(0.6)

    def test_holds_the_end_values_beyond_the_knots(self) -> None:
        assert self.CAL.p_comply(-50.0) == pytest.approx(0.1)
        assert self.CAL.p_comply(50.0) == pytest.approx(0.9)

    def test_vectorised_matches_scalar(self) -> None:
        rewards = np.linspace(-4.0, 4.0, 17)
        probs = self.CAL.p_comply(rewards)
        assert probs.tolist() == pytest.approx([self.CAL.p_comply(float(r)) for r in rewards])
        assert np.all(np.diff(probs) >= 0)

    @pytest.mark.parametrize(
        "knots",
        [
            ((0.5, 0.5),),
            ((0.2, 0.1), (0.2, 0.3)),
            ((0.2, 0.3), (0.8, 0.1)),
            ((0.2, 0.1), (1.2, 0.9)),
            ((0.2, -0.1), (0.8, 0.9)),
        ],
    )
    def test_rejects_knots_that_are_not_a_monotone_curve_in_the_unit_square(
        self, knots: tuple[tuple[float, float], ...]
    ) -> None:
        with pytest.raises(ValueError, match="knots"):
            Calibration(knots=knots)


class TestFitCalibration:
    def test_recovers_known_temperature_and_bias(self) -> None:
        rng = np.random.default_rng(0)
        rewards = rng.normal(0.0, 3.0, 20_000)
        truth = Calibration(temperature=2.5, bias=-0.7)
        labels = (rng.random(rewards.size) < truth.p_comply(rewards)).astype(int)
        fitted = fit_calibration(rewards, labels)
        assert fitted.temperature == pytest.approx(2.5, rel=0.08)
        assert fitted.bias == pytest.approx(-0.7, abs=0.08)
        assert expected_calibration_error(fitted.p_comply(rewards), labels) < 0.02

    def test_separable_data_stays_finite_and_ordered(self) -> None:
        fitted = fit_calibration([0.0, 1.0, 2.0, 3.0], [0, 0, 1, 1])
        assert math.isfinite(fitted.temperature) and fitted.temperature > 0
        assert fitted.p_comply(0.0) < 0.5 < fitted.p_comply(3.0)

    def test_anti_correlated_rewards_give_the_base_rate(self) -> None:
        fitted = fit_calibration([0.0, 1.0, 2.0, 3.0, 4.0], [1, 1, 1, 0, 0])
        assert fitted.temperature >= 1e5
        assert fitted.p_comply(0.0) == pytest.approx(0.6, abs=1e-4)

    def test_isotonic_undoes_a_reliability_curve_the_sigmoid_cannot(self) -> None:
        rng = np.random.default_rng(0)
        rewards = rng.normal(0.0, 2.0, 20_000)
        truth = np.where(rewards < 0.0, 0.1, 0.9)  # a step: no temperature and bias fit it
        labels = (rng.random(rewards.size) < truth).astype(int)
        sigmoid = fit_calibration(rewards, labels)
        isotonic = fit_calibration(rewards, labels, method="isotonic")
        assert (isotonic.temperature, isotonic.bias) == (sigmoid.temperature, sigmoid.bias)
        assert sigmoid.knots is None and isotonic.knots is not None
        grid = np.array([-3.0, -1.0, 1.0, 3.0])
        assert isotonic.p_comply(grid).tolist() == pytest.approx([0.1, 0.1, 0.9, 0.9], abs=0.03)
        assert np.max(np.abs(sigmoid.p_comply(grid) - [0.1, 0.1, 0.9, 0.9])) > 0.05
        fresh = (rng.random(rewards.size) < truth).astype(int)
        assert expected_calibration_error(isotonic.p_comply(rewards), fresh) < 0.02

    def test_isotonic_knots_are_never_certain(self) -> None:
        fitted = fit_calibration([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [0, 0, 0, 1, 1, 1], method="isotonic")
        # two pure blocks of three: the rule of succession gives 1/5 and 4/5
        assert [y for _, y in fitted.knots or ()] == pytest.approx([0.2, 0.8])

    def test_isotonic_keeps_tied_rewards_in_one_knot(self) -> None:
        fitted = fit_calibration([0.0, 1.0, 1.0, 2.0], [0, 0, 1, 1], method="isotonic")
        assert [y for _, y in fitted.knots or ()] == pytest.approx([1 / 3, 0.5, 2 / 3])

    def test_isotonic_on_anti_correlated_rewards_gives_the_base_rate(self) -> None:
        fitted = fit_calibration([0.0, 1.0, 2.0, 3.0, 4.0], [1, 1, 1, 0, 0], method="isotonic")
        assert fitted.knots is None
        assert fitted.p_comply(0.0) == pytest.approx(0.6, abs=1e-4)

    def test_rejects_an_unknown_method(self) -> None:
        with pytest.raises(ValueError, match="method"):
            fit_calibration([0.0, 1.0], [0, 1], method="platt")

    def test_accepts_lists_and_boolean_like_labels(self) -> None:
        fitted = fit_calibration([-2.0, -1.0, 0.5, 1.0, 2.0, -0.5], [0, 0, 1, 1, 1, 1])
        assert fitted.temperature > 0

    @pytest.mark.parametrize(
        ("rewards", "labels", "match"),
        [
            ([0.0, 1.0], [1, 1], "both classes"),
            ([0.0, 1.0], [0], "differ in length"),
            ([], [], "no data"),
            ([0.0, 1.0], [0, 2], "labels"),
            ([0.0, math.nan], [0, 1], "finite"),
        ],
    )
    def test_rejects_bad_data(self, rewards: list[float], labels: list[int], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            fit_calibration(rewards, labels)


class TestExpectedCalibrationError:
    def test_hand_made_values(self) -> None:
        # bin [0.1, 0.2): p 0.1 vs 1 of 2 complying -> 0.4; bin [0.9, 1.0]: p 0.9 vs 2 of 2 -> 0.1; weights 1/2 each
        ece = expected_calibration_error([0.1, 0.1, 0.9, 0.9], [0, 1, 1, 1], bins=10)
        assert ece == pytest.approx(0.25)

    def test_perfect_predictions(self) -> None:
        assert expected_calibration_error([0.0, 1.0, 1.0], [0, 1, 1]) == pytest.approx(0.0)

    def test_one_bin_is_the_gap_of_the_means(self) -> None:
        assert expected_calibration_error([0.2, 0.4, 0.9], [0, 1, 1], bins=1) == pytest.approx(abs(0.5 - 2 / 3))

    def test_probability_one_falls_in_the_last_bin(self) -> None:
        assert expected_calibration_error([1.0, 0.95], [1, 0], bins=15) == pytest.approx(abs(0.975 - 0.5))

    @pytest.mark.parametrize(
        ("probs", "labels", "bins"),
        [([0.5], [1, 0], 15), ([1.5], [1], 15), ([0.5], [3], 15), ([0.5], [1], 0), ([], [], 15)],
    )
    def test_rejects_bad_input(self, probs: list[float], labels: list[int], bins: int) -> None:
        with pytest.raises(ValueError):
            expected_calibration_error(probs, labels, bins=bins)


class TestCalibratedEceFloor:
    def test_certain_probabilities_have_no_floor(self) -> None:
        assert calibrated_ece_floor([0.0, 1.0, 1.0, 0.0]) == 0.0

    def test_floor_shrinks_with_the_number_of_items(self) -> None:
        probs = np.linspace(0.02, 0.98, 50)
        small, large = calibrated_ece_floor(probs), calibrated_ece_floor(np.repeat(probs, 100))
        assert 0.05 < small < 0.25
        assert large < 0.02

    def test_one_bin_at_one_half_matches_the_binomial_mean_deviation(self) -> None:
        # n items at p = 0.5 in one bin: E|k/n - 1/2| for k ~ Binomial(n, 1/2) is about sqrt(1 / (2 pi n))
        floor = calibrated_ece_floor(np.full(400, 0.5), bins=1, draws=2000)
        assert floor == pytest.approx(math.sqrt(1 / (2 * math.pi * 400)), rel=0.1)
