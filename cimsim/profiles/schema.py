"""The device-profile schema: one frozen pydantic model per section.

Units are in the field names: ``_us`` microsiemens, ``_s`` seconds, ``_rel`` a fraction,
``_lsb`` least-significant bits of the converter, ``n_`` counts.  Conductances are normalised
as ``x = G / g_max_us`` wherever a device law is a function of x.

Every physical quantity has a physical range (module constants below): conductances in
[G_MIN_US, G_MAX_US] = [1 pS, 1 S], times in [T_MIN_S, T_MAX_S] = [1 ps, the age of the
universe], relative spreads <= REL_MAX = 100 %, converter errors <= LSB_MAX = 2^16 LSB, drift
exponents and 1/f amplitudes <= NU_MAX / Q_S_MAX = 10, a programming spread <= the conductance
range.  Device laws (functions of x) are evaluated on a grid of x in [0, 1] in float32 and in
float64 (float32 chips evaluate them in float32) and must be finite and within their range in both.  Every field's description is
the documentation: ``docs/profiles.md`` is generated from it (``python -m cimsim.profiles.docgen``).
"""

from __future__ import annotations

import collections.abc as cabc
from typing import Annotated, Any, Literal, Union

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from ..times import T_MAX_S
from .functions import LAW_MAX, XFunction
from .tree import check_structure, with_overrides

__all__ = [
    "G_MIN_US",
    "G_MAX_US",
    "T_MIN_S",
    "T_MAX_S",
    "REL_MAX",
    "LSB_MAX",
    "NU_MAX",
    "Q_S_MAX",
    "BOUND_MAX",
    "R_MAX_OHM",
    "DeviceProfile",
    "Citation",
    "Conductance",
    "Programming",
    "WeightNoise",
    "ProgNoiseNone",
    "ProgNoiseConstant",
    "ProgNoiseRelative",
    "ProgNoiseFunction",
    "Drift",
    "DriftNone",
    "DriftPowerLaw",
    "DriftRelaxation",
    "NuModel",
    "ReadNoise",
    "ReadNoiseNone",
    "ReadNoiseGaussian",
    "ReadNoiseOneOverF",
    "ReadNoiseLogOneOverF",
    "IVLinear",
    "IVPolynomial",
    "IVNonlinearity",
    "Faults",
    "Variability",
    "RangeFixed",
    "RangeCalibrated",
    "RangeDynamic",
    "NonlinearityNone",
    "NonlinearityPolynomial",
    "NonlinearityTable",
    "NonlinearitySCurve",
    "NonlinearityInlTable",
    "Dac",
    "Adc",
    "BoundManagementNone",
    "BoundManagementIterative",
    "Tile",
    "Mapping",
    "Training",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


G_MIN_US = 1e-6
"""Smallest nonzero conductance, µS (1 pS, a 1 TΩ cell; a device below it is off: use 0)."""
G_MAX_US = 1e6
"""Largest conductance and conductance spread, µS (1 S, a 1 Ω cell, far above any memory device)."""
T_MIN_S = 1e-12
"""Shortest time constant, seconds (1 ps, below any read pulse)."""
REL_MAX = 1.0
"""Largest relative spread (a standard deviation of 100 % of the value: beyond it a Gaussian
around the value, clipped at 0, no longer describes a device)."""
LSB_MAX = float(1 << 16)
"""Largest converter error or nonlinearity, LSB (the whole code range of a 16-bit converter)."""
NU_MAX = 10.0
"""Largest drift exponent and drift-exponent spread (PCM's nu is about 0.1; nu = 10 loses 10
decades of conductance per decade of time)."""
Q_S_MAX = 10.0
"""Largest 1/f read-noise amplitude Q_s (PCM's is below 0.2)."""
BOUND_MAX = 1e6
"""Largest fixed converter bound (input units for the DAC, normalised column units for the ADC)."""
R_MAX_OHM = 1e6
"""Largest wire resistance per cell pitch, Ω (real wires have about 1 Ω)."""

Finite = Annotated[float, Field(allow_inf_nan=False)]
Coef = Annotated[float, Field(ge=-LAW_MAX, le=LAW_MAX, allow_inf_nan=False)]
Rate = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Siemens = Annotated[float, Field(ge=G_MIN_US, le=G_MAX_US, allow_inf_nan=False)]  # µS, nonzero
SpreadUs = Annotated[float, Field(ge=0, le=G_MAX_US, allow_inf_nan=False)]  # µS, a standard deviation
SignedUs = Annotated[float, Field(ge=-G_MAX_US, le=G_MAX_US, allow_inf_nan=False)]  # µS, a change
Seconds = Annotated[float, Field(ge=T_MIN_S, le=T_MAX_S, allow_inf_nan=False)]
Elapsed = Annotated[float, Field(ge=0, le=T_MAX_S, allow_inf_nan=False)]  # seconds since programming
RelSpread = Annotated[float, Field(ge=0, le=REL_MAX, allow_inf_nan=False)]
Lsb = Annotated[float, Field(ge=0, le=LSB_MAX, allow_inf_nan=False)]
Bits = Annotated[int, Field(ge=2, le=16)]  # signed symmetric: 1 bit would leave 0 levels per polarity
Percentile = Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]


_X_GRID = np.concatenate(([0.0, 1e-6, 1e-4, 1e-3], np.linspace(0.0, 1.0, 1001)[1:]))


def _short(values: list[float]) -> str:
    text = repr(values)
    return text if len(text) <= 60 else text[:57] + "..."


def _law_values(fn: Any, field: str) -> np.ndarray:
    """The x-function ``fn`` on x in [0, 1] (float64); raise when it is not finite there in float64
    or in float32 (float32 chips evaluate their laws in float32)."""
    for dtype in (np.float32, np.float64):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            y = np.asarray(fn.evaluate(_X_GRID.astype(dtype)))
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{field}: must be finite for every x in [0, 1] in {np.dtype(dtype).name} (got {float(y[i]):.6g} at "
                f"x={float(_X_GRID[i]):.6g}; check the coefficients' magnitude, or bound it with max)"
            )
    return y.astype(np.float64)


def _check_finite(fn: Any, field: str) -> np.ndarray:
    """Raise when the x-function ``fn`` overflows (Inf/NaN) anywhere on x in [0, 1]; its values there."""
    return _law_values(fn, field)


def _check_range(fn: Any, field: str, hi: float, what: str) -> None:
    """Raise when the x-function ``fn`` is not finite, or not in [0, hi], anywhere on x in [0, 1]."""
    y = _law_values(fn, field)
    bad = np.flatnonzero(~(y >= 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{field}: must be >= 0 for every x in [0, 1] (got {float(y[i]):.6g} at x={float(_X_GRID[i]):.6g})")
    bad = np.flatnonzero(y > hi)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{field}: must be <= {hi:g} for every x in [0, 1] ({what}) (got {float(y[i]):.6g} at "
            f"x={float(_X_GRID[i]):.6g}; check the coefficients, or bound it with max: {hi:g})"
        )


def _check_nonneg(fn: Any, field: str) -> None:
    """Raise when the x-function ``fn`` is not finite or goes negative anywhere on x in [0, 1]."""
    _check_range(fn, field, np.inf, "")


# --------------------------------------------------------------------------- provenance
class Citation(_Strict):
    reference: str = Field(min_length=1, description="authors, title, venue, year of the measurement paper")
    doi: str | None = Field(None, description="DOI of the source")
    url: str | None = Field(None, description="URL of the source (when there is no DOI, or in addition)")
    figure: str | None = Field(None, description="figure/table/equation the numbers come from")


# --------------------------------------------------------------------------- devices
class Conductance(_Strict):
    g_min_us: Annotated[float, Field(ge=0, le=G_MAX_US, allow_inf_nan=False)] = Field(
        0.0, description="lowest programmable conductance, µS (an unused device sits here): 0 or in [1e-6, 1e6] µS (1 pS to 1 S)"
    )
    g_max_us: Siemens = Field(
        description="highest programmable conductance, µS, in [1e-6, 1e6] µS (1 pS to 1 S); x = G / g_max_us in every device law"
    )
    n_levels: Annotated[int, Field(ge=2, le=1 << 20)] | None = Field(
        None, description="number of evenly spaced programmable levels in [g_min_us, g_max_us]; null = continuous"
    )

    @model_validator(mode="after")
    def _off(self) -> "Conductance":
        if 0 < self.g_min_us < G_MIN_US:
            raise ValueError(
                f"g_min_us: must be 0 or in [{G_MIN_US:g}, {G_MAX_US:g}] µS (got {self.g_min_us!r}); below 1 pS a device "
                "is off: write 0"
            )
        return self


class ProgNoiseNone(_Strict):
    kind: Literal["none"] = Field("none", description="no programming noise: G = target")


class ProgNoiseConstant(_Strict):
    kind: Literal["constant"] = Field(description="additive Gaussian, G = G_T + sigma_us * N(0,1)")
    sigma_us: SpreadUs = Field(description="standard deviation, µS, the same for every target; at most conductance.g_max_us")


class ProgNoiseRelative(_Strict):
    kind: Literal["relative"] = Field(description="multiplicative Gaussian, G = G_T * (1 + sigma_rel * N(0,1))")
    sigma_rel: RelSpread = Field(description="standard deviation relative to the target conductance, at most 1 (100 %)")


class ProgNoiseFunction(_Strict):
    kind: Literal["function"] = Field(
        description=(
            "additive Gaussian with sigma_us(G_T) = max(sigma(x), 0) * g_max_us / g_ref_us, "
            "x = G_T / g_max_us (the PCM/ReRAM fits: polynomial or table in x)"
        )
    )
    sigma: XFunction = Field(
        description="sigma as a function of x, in µS at g_max_us = g_ref_us; at most g_ref_us (a spread of the whole range) on x in [0, 1]"
    )
    g_ref_us: Siemens = Field(
        description="g_max at which the fit was made, µS, in [1e-6, 1e6]; the result scales by g_max_us / g_ref_us"
    )

    @model_validator(mode="after")
    def _finite(self) -> "ProgNoiseFunction":
        y = _check_finite(self.sigma, "sigma")
        bad = np.flatnonzero(y > self.g_ref_us)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"sigma: must be <= g_ref_us = {self.g_ref_us:g} µS for every x in [0, 1] (a spread wider than the "
                f"conductance range is no programming model) (got {float(y[i]):.6g} at x={float(_X_GRID[i]):.6g}; "
                f"check the coefficients, or bound it with max: {self.g_ref_us:g})"
            )
        return self


ProgNoise = Annotated[
    Union[ProgNoiseNone, ProgNoiseConstant, ProgNoiseRelative, ProgNoiseFunction], Field(discriminator="kind")
]


# Section defaults are built as ``X.model_validate({})`` (the same as ``X()``): mypy, without
# pydantic's plugin, does not see positional ``Field(default, ...)`` defaults and would call X()
# short of arguments.


class WeightNoise(_Strict):
    """A weight-noise law for inference (e.g. IBM's Analog Foundation Models PCM law): one draw
    per signed weight, applied to the mapped weight before its pair is programmed."""

    sigma: XFunction = Field(
        description=(
            "standard deviation of the noise on w_n = W / s (s the weight scale of the mapping), as a function of "
            "x = |w_n|, in [0, 1] on x in [0, 1]: w_n' = w_n + max(sigma(|w_n|), 0) z; the pair is then programmed to "
            "G+ = g_min + max(w_n', 0) dg, G- = g_min + max(-w_n', 0) dg (the unused device stays at g_min, |w_n'| may "
            "exceed 1: no clip at g_max unless programming.clip_upper)"
        )
    )
    prune_below: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = Field(
        0.0, description="weights with |w_n| below this are programmed to exactly 0 (both devices at g_min), in [0, 1)"
    )

    @model_validator(mode="after")
    def _law(self) -> "WeightNoise":
        _check_range(self.sigma, "sigma", REL_MAX, "a spread relative to the weight scale")
        return self


class Programming(_Strict):
    weight_noise: WeightNoise | None = Field(
        None,
        description=(
            "a weight-noise law applied to each mapped weight before its devices are programmed (differential "
            "mapping, one device pair per weight); null = none"
        ),
    )
    noise: ProgNoise = Field(default_factory=lambda: ProgNoiseNone.model_validate({}), description="programming-noise model (kind: none | constant | relative | function)")
    stochastic_rounding: bool = Field(
        False, description="round targets to levels stochastically (P(up) = distance to lower level / step) instead of to the nearest level"
    )
    clip_upper: bool = Field(
        False, description="also clip programmed conductances at g_max_us (they are always clipped at g_min_us, as in the reference PCM model)"
    )


class NuModel(_Strict):
    mean: XFunction = Field(description="mean drift exponent mu_nu(x), dimensionless, in [0, 10] on x in [0, 1]")
    std: XFunction = Field(description="device-to-device spread sigma_nu(x), dimensionless, in [0, 10] on x in [0, 1]")

    @model_validator(mode="after")
    def _nonneg(self) -> "NuModel":
        _check_range(self.mean, "mean", NU_MAX, "a drift exponent")
        _check_range(self.std, "std", NU_MAX, "a drift-exponent spread")
        return self


class DriftNone(_Strict):
    kind: Literal["none"] = Field("none", description="conductances do not drift")


class DriftPowerLaw(_Strict):
    kind: Literal["power_law"] = Field(
        description="G(t) = G_prog * ((t + t0_s) / t0_s)^(-nu), t = seconds since programming; nu drawn once per device"
    )
    t0_s: Seconds = Field(description="reference time t0, seconds, in [1e-12, 4.35e17] (1 ps to the age of the universe)")
    nu: NuModel = Field(description="nu ~ N(mu_nu(x), sigma_nu(x)) per device at programming (x of the target)")
    absolute: bool = Field(True, description="fold the draw, nu = |N(mu, sigma)| (reference PCM model); false clips nu at 0")


class DriftRelaxation(_Strict):
    kind: Literal["relaxation"] = Field(
        description=(
            "additive, G-independent relaxation (ReRAM; Falcone et al. 2025): G(t) = max(G_prog + mu(t) + sigma(t) N(0,1), 0) "
            "per device, one realisation per evaluation time (as the 1/f noise); mu(t) = mean_slope_us ln(t_e / 1 s) + "
            "mean_at_1s_us, sigma(t) = max(sigma_slope_us ln(t_e / 1 s) + sigma_at_1s_us, 0), t_e = max(t, t_min_s); "
            "none at t = 0; stuck devices do not relax"
        )
    )
    mean_slope_us: SignedUs = Field(description="mean conductance change per e-fold of time, µS (negative: conductances fall), |.| <= 1e6")
    mean_at_1s_us: SignedUs = Field(0.0, description="mean conductance change at t = 1 s, µS, |.| <= 1e6")
    sigma_slope_us: SignedUs = Field(description="growth of the spread per e-fold of time, µS, |.| <= 1e6")
    sigma_at_1s_us: SpreadUs = Field(description="spread (standard deviation) at t = 1 s, µS, in [0, 1e6]")
    t_min_s: Seconds = Field(
        1.0, description="start of the fit's time range, seconds, in [1e-12, 4.35e17]: 0 < t < t_min_s reads the law at t_min_s"
    )
    clamp: bool = Field(
        False,
        description=(
            "at t > 0, after relaxation and read noise, clamp every device to [conductance.g_min_us, "
            "conductance.g_max_us] (aihwkit's ReRamCMONoiseModel: g_final.clamp(min=g_min, max=g_max)); false: only at 0"
        ),
    )


Drift = Annotated[Union[DriftNone, DriftPowerLaw, DriftRelaxation], Field(discriminator="kind")]


class ReadNoiseNone(_Strict):
    kind: Literal["none"] = Field("none", description="reads are exact")


PerReadVariance = Literal["exact", "column_mean"]


def _per_read_variance_field() -> Any:
    """The ``per_read_variance`` field of the read-noise kinds that have per-read noise."""
    return Field(
        "exact",
        description=(
            "how an MVM forms a column's per-read variance over a tile's rows i: exact = sum_i x_i^2 sigma_i^2 (a second "
            "GEMM); column_mean = (sum_i x_i^2) mean_i sigma_i^2, each tile column's devices taken at their mean variance "
            "(no second GEMM; exact when a column's sigma_i are equal; its measured error: docs/physics.md, section 5)"
        ),
    )


class ReadNoiseGaussian(_Strict):
    kind: Literal["gaussian"] = Field(
        description=(
            "white noise drawn anew for every read: G_read = G(t) + sqrt((sigma_rel G(t))^2 + sigma(x_P)^2) N(0,1), "
            "x_P = G_prog / g_max_us"
        )
    )
    sigma_rel: RelSpread = Field(0.0, description="per-read standard deviation relative to G(t), at most 1")
    sigma: XFunction | None = Field(
        None,
        description=(
            "per-read standard deviation in µS as a function of x_P (e.g. SONOS, Agrawal et al. 2022), at most "
            "conductance.g_max_us on x in [0, 1]; null = none"
        ),
    )
    per_read_variance: PerReadVariance = _per_read_variance_field()

    @model_validator(mode="after")
    def _law(self) -> "ReadNoiseGaussian":
        if self.sigma is not None:
            _check_finite(self.sigma, "sigma")
            _check_nonneg(self.sigma, "sigma")
        return self


class ReadNoiseOneOverF(_Strict):
    kind: Literal["one_over_f"] = Field(
        description=(
            "1/f noise integrated up to the read time, static for one evaluation time: "
            "sigma(t) = G(t) * Q_s(x) * sqrt(ln((t + t0 + t_read_s) / (2 t_read_s))), t0 from the drift section (20 s if none)"
        )
    )
    q_s: XFunction = Field(description="Q_s(x), dimensionless amplitude, in [0, 10] on x in [0, 1]")
    t_read_s: Seconds = Field(description="duration of one read, seconds, in [1e-12, 4.35e17]")
    per_read_sigma_rel: RelSpread = Field(0.0, description="additional white noise drawn for every read, relative to G(t), at most 1")
    per_read_variance: PerReadVariance = _per_read_variance_field()

    @model_validator(mode="after")
    def _nonneg(self) -> "ReadNoiseOneOverF":
        _check_range(self.q_s, "q_s", Q_S_MAX, "a 1/f amplitude")
        return self


class ReadNoiseLogOneOverF(_Strict):
    kind: Literal["log_one_over_f"] = Field(
        description=(
            "1/f-style read noise of IBM's CMO/HfOx ReRAM as aihwkit's ReRamCMONoiseModel code computes it, static for "
            "one evaluation time: G += sigma z, sigma(t) = coeff_us |log10(G(t) / 1 µS)| sqrt(max(ln((t + t_read_s) / "
            "(2 t_read_s)), 0)) µS, G(t) the relaxed conductance (floored at 1e-6 µS inside the log; the sign of the "
            "log does not matter to a centred Gaussian), then G = max(G, 0); none at t = 0. Needs drift kind none or "
            "relaxation"
        )
    )
    coeff_us: SpreadUs = Field(description="amplitude K, µS per decade of G, in [0, 1e6] (aihwkit: 0.0277316483)")
    t_read_s: Seconds = Field(description="duration of one read, seconds, in [1e-12, 4.35e17] (aihwkit: 1e-6)")


ReadNoise = Annotated[
    Union[ReadNoiseNone, ReadNoiseGaussian, ReadNoiseOneOverF, ReadNoiseLogOneOverF], Field(discriminator="kind")
]


class Faults(_Strict):
    stuck_at_g_min_rel: Rate = Field(0.0, description="fraction of devices stuck at g_min_us (they never drift)")
    stuck_at_g_max_rel: Rate = Field(0.0, description="fraction of devices stuck at g_max_us (they never drift)")

    @model_validator(mode="after")
    def _sum(self) -> "Faults":
        total = self.stuck_at_g_min_rel + self.stuck_at_g_max_rel
        if total > 1:
            raise ValueError(
                f"stuck_at_g_max_rel: stuck_at_g_min_rel + stuck_at_g_max_rel must be <= 1 "
                f"(got {self.stuck_at_g_min_rel} + {self.stuck_at_g_max_rel} = {total})"
            )
        return self


class Variability(_Strict):
    g_max_spread_rel: RelSpread = Field(
        0.0, description="device-to-device spread of g_max, at most 1: each device's range scales by max(1 + s * N(0,1), 0), drawn at programming"
    )


# --------------------------------------------------------------------------- peripherals
class RangeFixed(_Strict):
    kind: Literal["fixed"] = Field(description="a fixed bound")
    bound: Annotated[float, Field(gt=0, le=BOUND_MAX, allow_inf_nan=False)] = Field(
        description="symmetric bound, in (0, 1e6]: DAC inputs in input units; ADC in normalised column units (sum of x_norm * w_norm)"
    )


class RangeCalibrated(_Strict):
    kind: Literal["calibrated"] = Field(description="bound set by `calibrate(x_ref)` from reference data (per column for the ADC)")
    percentile: Percentile = Field(99.99, description="percentile of |value| over the reference data used as the bound")


class RangeDynamic(_Strict):
    kind: Literal["dynamic"] = Field(description="DAC only: bound = max |x| of each input vector (per-vector abs-max scaling)")


class NonlinearityNone(_Strict):
    kind: Literal["none"] = Field("none", description="ideal linear transfer")


class NonlinearityPolynomial(_Strict):
    kind: Literal["polynomial"] = Field(description="u -> sum_k coeffs[k] u^k on the normalised signal u in [-1, 1] (odd symmetry not imposed)")
    coeffs: list[Coef] = Field(min_length=1, max_length=16, description="c0, c1, ... (c1 = 1 and the rest 0 is ideal), each |c| <= 1e6")


class NonlinearityTable(_Strict):
    kind: Literal["table"] = Field(description="transfer curve u -> v on the normalised signal, linearly interpolated")
    u: list[Finite] = Field(min_length=2, max_length=65536, description="strictly increasing inputs in [-1, 1]")
    v: list[Coef] = Field(min_length=2, max_length=65536, description="outputs at each u, each |v| <= 1e6")

    @model_validator(mode="after")
    def _shape(self) -> "NonlinearityTable":
        if len(self.u) != len(self.v):
            raise ValueError(f"v: must have as many entries as u (got {len(self.v)} and {len(self.u)})")
        if any(b <= a for a, b in zip(self.u, self.u[1:])):
            raise ValueError(f"u: must be strictly increasing (got {_short(self.u)})")
        if self.u[0] < -1 or self.u[-1] > 1:
            raise ValueError(f"u: must lie in [-1, 1] (got {self.u[0]} .. {self.u[-1]})")
        return self


class NonlinearitySCurve(_Strict):
    kind: Literal["s_curve"] = Field(description="compressive ADC front end: u -> tanh(k u) / tanh(k)")
    k: Annotated[float, Field(gt=0, le=50, allow_inf_nan=False)] = Field(description="steepness k (-> 0 is linear)")


class NonlinearityInlTable(_Strict):
    kind: Literal["inl_table"] = Field(description="ADC only: integral nonlinearity per output code, in LSB, added to the code")
    inl_lsb: list[Annotated[float, Field(ge=-LSB_MAX, le=LSB_MAX, allow_inf_nan=False)]] = Field(
        min_length=2, max_length=65536, description="one entry per code, codes -(2^(b-1)-1) .. 2^(b-1)-1 in order, each |.| <= 65536"
    )


DacNonlinearity = Annotated[
    Union[NonlinearityNone, NonlinearityPolynomial, NonlinearityTable], Field(discriminator="kind")
]
AdcNonlinearity = Annotated[
    Union[NonlinearityNone, NonlinearityPolynomial, NonlinearityTable, NonlinearitySCurve, NonlinearityInlTable],
    Field(discriminator="kind"),
]
DacRange = Annotated[Union[RangeFixed, RangeCalibrated, RangeDynamic], Field(discriminator="kind")]
AdcRange = Annotated[Union[RangeFixed, RangeCalibrated], Field(discriminator="kind")]


class Dac(_Strict):
    bits: Bits | None = Field(None, description="signed symmetric resolution: 2^(bits-1)-1 levels per polarity; null = ideal (no quantization, no clipping)")
    range: DacRange = Field(default_factory=lambda: RangeDynamic(kind="dynamic"), description="input range (kind: fixed | calibrated | dynamic)")
    nonlinearity: DacNonlinearity = Field(default_factory=lambda: NonlinearityNone.model_validate({}), description="transfer nonlinearity (kind: none | polynomial | table)")
    noise_lsb: Lsb = Field(0.0, description="Gaussian noise on each converted input, in LSB, at most 65536")
    bit_serial: bool = Field(
        False,
        description=(
            "apply each input code bit by bit: bit p of |code| (p = 0 .. bits-2) drives the rows as a 0/1 pulse with the "
            "code's sign, the ADC converts every bit plane's column sums, and the periphery adds them as 2^p / L; needs "
            "dac.bits and a linear, noiseless DAC (the pulses are digital)"
        ),
    )

    @model_validator(mode="after")
    def _serial(self) -> "Dac":
        if self.bit_serial and self.bits is None:
            raise ValueError("bit_serial: needs dac.bits (bit planes of the input code) (got bits=null)")
        if self.bit_serial and (self.noise_lsb > 0 or getattr(self.nonlinearity, "kind", "none") != "none"):
            raise ValueError(
                "bit_serial: bit-serial pulses are digital, so dac.noise_lsb must be 0 and dac.nonlinearity none "
                f"(got noise_lsb={self.noise_lsb}, nonlinearity={self.nonlinearity.kind})"
            )
        return self


class BoundManagementNone(_Strict):
    kind: Literal["none"] = Field("none", description="one conversion per read: a saturated column is clipped at the rail")


class BoundManagementIterative(_Strict):
    kind: Literal["iterative"] = Field(
        description=(
            "aihwkit's BoundManagementType.ITERATIVE: when any ADC of an input vector's read saturates, the vector's DAC "
            "bound is doubled (its input scale halved) and the whole read is converted again, pass p with bound "
            "2^(p-1) x the DAC range, until no column saturates or p = max_passes (that pass is kept, clipped). "
            "Cost: a saturating vector is read up to max_passes times (GEMM, draws, conversions), and each halving "
            "leaves its inputs one DAC bit less"
        )
    )
    max_passes: Annotated[int, Field(ge=2, le=32)] = Field(
        description=(
            "most passes per input vector, in [2, 32]; aihwkit stops once the reduction 2^(p-1) exceeds "
            "min(max_bm_factor, max_bm_res / inp_res) = min(1000, 0.25 x 126) = 31.5 for its 7-bit default: 6 passes"
        )
    )


BoundManagement = Annotated[Union[BoundManagementNone, BoundManagementIterative], Field(discriminator="kind")]


class Adc(_Strict):
    bits: Bits | None = Field(None, description="signed symmetric resolution: 2^(bits-1)-1 levels per polarity; null = ideal (no quantization, no saturation)")
    range: AdcRange = Field(
        default_factory=lambda: RangeFixed(kind="fixed", bound=16.0),
        description="full scale per tile column (kind: fixed | calibrated), in the units of adc.units",
    )
    units: Literal["normalised", "raw"] = Field(
        "normalised",
        description=(
            "units of a fixed range's bound (and so of the LSB and of noise_lsb): normalised = column sums of "
            "x_norm * w_norm, the weights scaled to the conductance range (aihwkit's weight_scaling_omega = 1); raw = "
            "column sums of x_norm * W, the raw weights (aihwkit's default omega = 0: the tile holds the weights "
            "themselves), i.e. a tile column of weight scale s has the normalised bound bound / s. With raw units a "
            "layer whose weights are small (s << 1) uses few ADC levels and its conversion noise is large against "
            "its outputs (the noise is fixed in weight x input units); needs range kind fixed"
        ),
    )
    bound_management: BoundManagement = Field(
        default_factory=lambda: BoundManagementNone.model_validate({}),
        description="what happens when a column saturates (kind: none | iterative); iterative needs adc.bits",
    )
    nonlinearity: AdcNonlinearity = Field(default_factory=lambda: NonlinearityNone.model_validate({}), description="transfer nonlinearity (kind: none | polynomial | table | s_curve | inl_table)")
    gain_error_rel: RelSpread = Field(0.0, description="std of the static per-column gain error, drawn once per chip: gain = 1 + e; at most 1")
    offset_error_lsb: Lsb = Field(0.0, description="std of the static per-column offset, LSB, drawn once per chip; at most 65536")
    noise_lsb: Lsb = Field(0.0, description="Gaussian conversion noise per conversion, LSB, at most 65536")

    @model_validator(mode="after")
    def _units(self) -> "Adc":
        if self.units == "raw" and not isinstance(self.range, RangeFixed):
            raise ValueError(
                f"units: raw needs range kind fixed (a calibrated range is measured in normalised units) (got range kind={self.range.kind})"
            )
        if isinstance(self.bound_management, BoundManagementIterative) and self.bits is None:
            raise ValueError("bound_management: kind iterative needs adc.bits (an ideal ADC never saturates) (got bits=null)")
        return self


class IVLinear(_Strict):
    """Ohmic devices: I = G V."""

    kind: Literal["linear"] = "linear"


class IVPolynomial(_Strict):
    """Device I-V nonlinearity as a cubic in the read voltage (the form of Milo et al., IRPS 2021):
    ``I = G V (1 + a2(x) |V| + a3(x) V^2)`` with x = G / g_max of the device's conductance at the
    read time (``a2 G`` and ``a3 G`` are Milo's NL2 and NL3), odd in V (a negative input voltage
    gives the opposite current), and ``V = x_in v_read_v`` the DAC output (x_in in [-1, 1])."""

    kind: Literal["polynomial"] = "polynomial"
    v_read_v: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = Field(
        description="read voltage at full-scale DAC input, V (Milo et al. fit V <= 0.5 V)"
    )
    a2_per_v: XFunction = Field(description="a2(x), 1/V: quadratic coefficient relative to G (NL2 / G0)")
    a3_per_v2: XFunction = Field(description="a3(x), 1/V^2: cubic coefficient relative to G (NL3 / G0)")

    @model_validator(mode="after")
    def _finite(self) -> "IVPolynomial":
        _check_finite(self.a2_per_v, "a2_per_v")
        _check_finite(self.a3_per_v2, "a3_per_v2")
        return self


IVNonlinearity = Annotated[Union[IVLinear, IVPolynomial], Field(discriminator="kind")]


class Tile(_Strict):
    rows: Annotated[int, Field(ge=1, le=1 << 16)] = Field(256, description="rows per tile: inputs summed on one column before one ADC conversion")
    cols: Annotated[int, Field(ge=1, le=1 << 16)] = Field(256, description="columns per tile (outputs)")
    bit_line_r_ohm: Annotated[float, Field(ge=0, le=R_MAX_OHM, allow_inf_nan=False)] = Field(
        0.0,
        description=(
            "bit-line wire resistance per cell pitch (and from the last cell to the sense amplifier), Ω, in [0, 1e6]; 0 = ideal "
            "wires. IR drop solved exactly for each column of a tile (row 0 farthest from the sense amplifier, a "
            "virtual ground; ideal word lines; G+, G- and a reference column each on their own bit line)"
        ),
    )
    word_line_r_ohm: Annotated[float, Field(ge=0, le=R_MAX_OHM, allow_inf_nan=False)] = Field(
        0.0,
        description=(
            "word-line wire resistance per cell pitch (and from the row driver to the first cell), Ω, in [0, 1e6]; 0 = ideal. "
            "With it the whole tile (word and bit lines) is solved exactly as one resistive network, once per drifted "
            "state (O(rows cols^3) flops per tile, so not per read); G+ and G- each form their own array; "
            "a single_reference tile's reference column is its last column"
        ),
    )


class Mapping(_Strict):
    kind: Literal["differential", "single_reference"] = Field(
        "differential",
        description=(
            "differential: w -> (G+, G-), the unused device at g_min; single_reference: one device per weight, "
            "G = g_min + (w+1)/2 (g_max-g_min), minus a reference column at mid-range"
        ),
    )
    subtraction: Literal["analog", "digital"] = Field(
        "analog", description="where G+ - G- (or G - G_ref) is taken: on the bit line before the ADC, or after two conversions"
    )
    scaling: Literal["per_layer", "per_tile", "per_column"] = Field(
        "per_column", description="granularity of the weight scale s (w_norm = W / s)"
    )
    clip_percentile: Percentile | None = Field(
        None, description="s = this percentile of |W| in each scaling group (weights beyond are clipped); null = max |W|"
    )
    weight_slices: Annotated[int, Field(ge=1, le=16)] = Field(
        1,
        description=(
            "bit slicing: each weight's code C = rint(|w_norm| (n^S - 1)), n = conductance.n_levels, is split into S "
            "base-n digits d_s, each on its own device (pair) in its own column; the ADC converts every slice column and "
            "the periphery adds them as n^s (n - 1) / (n^S - 1); 1 = one device (pair) per weight"
        ),
    )


class Training(_Strict):
    drift_t_min_s: Elapsed | None = Field(
        None,
        description=(
            "if set with drift_t_max_s: each training step draws t log-uniformly in [min, max] and trains on the drifted "
            "chip; seconds, 0 or in [1e-12, 4.35e17]"
        ),
    )
    drift_t_max_s: Elapsed | None = Field(
        None, description="upper end of the training drift-time range, seconds, in [0, 4.35e17] (the age of the universe)"
    )

    @model_validator(mode="after")
    def _pair(self) -> "Training":
        lo, hi = self.drift_t_min_s, self.drift_t_max_s
        if (lo is None) != (hi is None):
            raise ValueError(f"drift_t_max_s: must be set together with drift_t_min_s, both or neither (got min={lo}, max={hi})")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"drift_t_min_s: must be <= drift_t_max_s (got {lo} > {hi})")
        if lo is not None and 0 < lo < T_MIN_S:
            raise ValueError(
                f"drift_t_min_s: must be 0 or in [{T_MIN_S:g}, {T_MAX_S:g}] s (got {lo!r}); a shorter time is 0 (the "
                "log-uniform draw then runs over t + 1 s)"
            )
        return self


# --------------------------------------------------------------------------- profile
class DeviceProfile(_Strict):
    """A complete description of one analog CIM chip: device, peripherals, tiling and mapping."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$", description="short identifier, e.g. pcm")
    device: str = Field("", description="short device type shown by `cimsim profile list`, e.g. PCM (doped GST), IBM 1M-device array")
    description: str = Field("", description="one-paragraph summary of the device")
    citation: Citation | None = Field(None, description="source of the numbers (required for shipped profiles)")
    assumptions: list[str] = Field(default_factory=list, description="what is not from the source, and what the model leaves out")
    derived_from: str | None = Field(
        None, description="name of the profile this one was derived from (by extends: or overrides); set by the loader"
    )
    changed_fields: list[str] = Field(
        default_factory=list,
        description="dotted fields whose value differs from derived_from's (set by the loader); not in the dump when not derived",
    )
    conductance: Conductance = Field(description="programmable conductance range and levels of one device")
    programming: Programming = Field(default_factory=lambda: Programming.model_validate({}), description="how targets become programmed conductances (noise, rounding, clipping)")
    drift: Drift = Field(default_factory=lambda: DriftNone.model_validate({}), description="drift model (kind: none | power_law | relaxation)")
    read_noise: ReadNoise = Field(default_factory=lambda: ReadNoiseNone.model_validate({}), description="read-noise model (kind: none | gaussian | one_over_f)")
    iv: IVNonlinearity = Field(default_factory=lambda: IVLinear.model_validate({}), description="device current vs read voltage (kind: linear | polynomial)")
    faults: Faults = Field(default_factory=lambda: Faults.model_validate({}), description="stuck-at device rates")
    variability: Variability = Field(default_factory=lambda: Variability.model_validate({}), description="device-to-device spread of the conductance range")
    dac: Dac = Field(default_factory=lambda: Dac.model_validate({}), description="input digital-to-analog converter (one per row)")
    adc: Adc = Field(default_factory=lambda: Adc.model_validate({}), description="output analog-to-digital converter (one per tile column)")
    tile: Tile = Field(default_factory=lambda: Tile.model_validate({}), description="crossbar tile size; larger matrices are split into tiles")
    mapping: Mapping = Field(default_factory=lambda: Mapping.model_validate({}), description="how signed weights become conductances and back")
    training: Training = Field(default_factory=lambda: Training.model_validate({}), description="hardware-aware training options read by the torch layers")

    @model_validator(mode="after")
    def _cross_field(self) -> "DeviceProfile":
        c = self.conductance
        if c.g_max_us <= c.g_min_us:
            raise ValueError(
                f"conductance.g_max_us: must be > conductance.g_min_us = {c.g_min_us} (got {c.g_max_us})"
            )
        if self.mapping.weight_slices > 1 and (c.n_levels is None or c.n_levels ** self.mapping.weight_slices > 1 << 24):
            raise ValueError(
                f"mapping.weight_slices: {self.mapping.weight_slices} slices need conductance.n_levels set (the digits' base) "
                f"and n_levels^slices <= 2^24 (float32 weights carry 24 bits) (got n_levels={c.n_levels})"
            )
        if self.mapping.weight_slices > 1 and self.mapping.kind != "differential":
            raise ValueError(
                "mapping.weight_slices: bit slicing needs mapping.kind differential (a signed digit on one device "
                f"against a mid-range reference needs 2n - 1 levels, the device has n) (got kind={self.mapping.kind})"
            )
        t = self.tile
        if isinstance(self.iv, IVPolynomial) and (t.bit_line_r_ohm > 0 or t.word_line_r_ohm > 0):
            raise ValueError(
                "iv: a nonlinear I-V with IR drop makes every cell's voltage depend on the inputs (a nonlinear "
                "circuit solve, not modelled): set tile.bit_line_r_ohm and tile.word_line_r_ohm to 0 or iv.kind to "
                f"linear (got bit_line_r_ohm={t.bit_line_r_ohm}, word_line_r_ohm={t.word_line_r_ohm}, iv.kind=polynomial)"
            )

        noise = self.programming.noise
        if isinstance(noise, ProgNoiseConstant) and noise.sigma_us > c.g_max_us:
            raise ValueError(
                f"programming.noise.sigma_us: must be <= conductance.g_max_us = {c.g_max_us:g} µS (a spread wider than "
                f"the conductance range is no programming model) (got {noise.sigma_us!r})"
            )
        rn = self.read_noise
        if isinstance(rn, ReadNoiseGaussian) and rn.sigma is not None:
            y = _law_values(rn.sigma, "read_noise.sigma")
            bad = np.flatnonzero(y > c.g_max_us)
            if bad.size:
                i = int(bad[0])
                raise ValueError(
                    f"read_noise.sigma: must be <= conductance.g_max_us = {c.g_max_us:g} µS for every x in [0, 1] (got "
                    f"{float(y[i]):.6g} at x={float(_X_GRID[i]):.6g}; check the coefficients, or bound it with max)"
                )
        if self.programming.stochastic_rounding and c.n_levels is None:
            raise ValueError("programming.stochastic_rounding: true needs conductance.n_levels (got n_levels null = continuous)")
        for sec in ("dac", "adc"):
            conv = getattr(self, sec)
            if conv.bits is None:
                for f in ("noise_lsb", "offset_error_lsb"):
                    v = getattr(conv, f, 0.0)
                    if v != 0:
                        raise ValueError(f"{sec}.{f}: must be 0 when {sec}.bits is null (an ideal converter has no LSB) (got {v})")
        nl = self.adc.nonlinearity
        if isinstance(nl, NonlinearityInlTable):
            if self.adc.bits is None:
                raise ValueError("adc.nonlinearity: kind inl_table needs adc.bits (got adc.bits null)")
            want = 2 ** self.adc.bits - 1
            if len(nl.inl_lsb) != want:
                raise ValueError(
                    f"adc.nonlinearity.inl_lsb: must have 2^bits - 1 = {want} entries for adc.bits={self.adc.bits} (got {len(nl.inl_lsb)})"
                )
        return self

    @model_serializer(mode="wrap")
    def _provenance_when_derived(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Dumps of a profile that is not derived stay as they were before these fields existed
        (run files and study fingerprints hash them)."""
        data = handler(self)
        if isinstance(data, dict) and self.derived_from is None and not self.changed_fields:
            data.pop("derived_from", None)
            data.pop("changed_fields", None)
        return data

    @model_validator(mode="after")
    def _weight_noise(self) -> "DeviceProfile":
        if self.programming.weight_noise is not None and (self.mapping.kind != "differential" or self.mapping.weight_slices > 1):
            raise ValueError(
                "programming.weight_noise: a noise on the signed weight needs mapping.kind differential and "
                f"mapping.weight_slices 1 (got kind={self.mapping.kind}, weight_slices={self.mapping.weight_slices})"
            )
        return self

    @model_validator(mode="after")
    def _log_read_noise(self) -> "DeviceProfile":
        if isinstance(self.read_noise, ReadNoiseLogOneOverF) and isinstance(self.drift, DriftPowerLaw):
            raise ValueError(
                "read_noise: kind log_one_over_f reads the relaxed conductance, so it needs drift kind none or relaxation "
                f"(got drift kind={self.drift.kind})"
            )
        return self

    def to_yaml(self) -> str:
        """The complete profile (every default spelled out) as YAML; loading it gives an equal profile."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100)

    def with_overrides(self, overrides: cabc.Mapping[str, Any]) -> "DeviceProfile":
        """A validated copy with dotted-path overrides applied, e.g. ``{"adc.bits": 6}``."""
        data, source = self.model_dump(mode="json"), f"<{self.name}>"
        check_structure(data, source)
        return with_overrides(type(self), data, source, overrides)

    @property
    def is_ideal(self) -> bool:
        """True when every non-ideality is off (the simulator then equals a float matmul)."""
        return (
            self.conductance.n_levels is None
            and isinstance(self.programming.noise, ProgNoiseNone)
            and self.programming.weight_noise is None
            and isinstance(self.drift, DriftNone)
            and isinstance(self.read_noise, ReadNoiseNone)
            and isinstance(self.iv, IVLinear)
            and self.faults.stuck_at_g_min_rel == 0
            and self.faults.stuck_at_g_max_rel == 0
            and self.variability.g_max_spread_rel == 0
            and self.dac.bits is None
            and isinstance(self.dac.nonlinearity, NonlinearityNone)
            and self.dac.noise_lsb == 0
            and self.adc.bits is None
            and isinstance(self.adc.nonlinearity, NonlinearityNone)
            and self.adc.gain_error_rel == 0
            and self.adc.offset_error_lsb == 0
            and self.adc.noise_lsb == 0
        )
