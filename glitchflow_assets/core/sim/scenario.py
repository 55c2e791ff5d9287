"""What the simulated detector looks like: channels, their noise, and how glitches couple between them.

The default, :data:`VIRGO_SCENARIO`, mimics a Virgo observing run: strain coloured by the AdV O3 PSD and
ten auxiliary channels at 256 Hz - 16384 Hz with Virgo-style names, in every role a witness-selection
method must get right:

=========================  =========  ===============================================================
channel                    rate (Hz)  role
=========================  =========  ===============================================================
V1:Hrec_hoft_16384Hz       16384      strain
V1:LSC_DARM_ERR            16384      witness of every glitch (the DARM loop error signal)
V1:LSC_MICH_ERR            4096       witness of blips
V1:LSC_PRCL_ERR            4096       witness of blips (60 %) and low-frequency bursts (60 %)
V1:SDB2_B1_PD1             2048       witness of scattered-light arches (bench photodiode)
V1:ENV_NEB_MAG_N           1024       witness of low-frequency (magnetic) bursts
V1:ENV_CEB_SEIS_V          256        driver: slow ground motion that makes the arches, out of band
V1:ENV_CEB_MIC_V           8192       self-glitching: own bursts that never reach the strain
V1:ASC_NE_TX_CORR          512        self-glitching, in the 8-50 Hz band
V1:ENV_CEB_UPS_CURR_R      1024       a 50 Hz mains line and harmonics, otherwise noise
V1:SUSP_WE_F0_TZ           256        quiet: pure noise
=========================  =========  ===============================================================
"""

from dataclasses import dataclass, field, replace

import numpy as np

from glitchflow_assets.core.sim.locks import LockSchedule
from glitchflow_assets.core.sim.noise import PsdFunction, lal_psd, power_law_psd
from glitchflow_assets.core.sim.signals import Signal

STRAIN = "V1:Hrec_hoft_16384Hz"


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    sample_rate: int
    unit: str
    role: str  # strain | witness | driver | self_glitching | line | quiet
    psd: PsdFunction = field(compare=False, repr=False)
    lines: tuple[tuple[float, float], ...] = ()  # (frequency Hz, amplitude in units of the noise rms)


@dataclass(frozen=True)
class Morphology:
    """A glitch family: how often it occurs, what shapes it, who witnesses it, how it couples to strain.

    ``witnesses`` pairs each witness channel with the probability that it sees a given glitch.
    ``transfer_band`` is the (low, high) corner pair of the 2nd-order Butterworth band-pass through
    which the source reaches the strain, after ``delay_s``.
    """

    name: str
    weight: float
    witnesses: tuple[tuple[str, float], ...]
    transfer_band: tuple[float, float]
    delay_s: float
    f0_range: tuple[float, float]  # blips/bursts: central frequency; arches: apex fringe frequency
    q_range: tuple[float, float] = (4.0, 4.0)  # sine-Gaussian quality factor (unused for arches)


@dataclass(frozen=True)
class SelfGlitches:
    """Glitches that live in one auxiliary channel only."""

    channel: str
    rate_per_min: float
    f0_range: tuple[float, float]
    q_range: tuple[float, float]
    snr_range: tuple[float, float]


@dataclass(frozen=True)
class ScriptedGlitch:
    """A strain glitch at a chosen source time, added to the random ones (window edges, close pairs)."""

    gps: float
    morphology: str  # one of the scenario's morphology names
    snr: float
    frequency: float
    q: float = 4.0


@dataclass(frozen=True)
class Scenario:
    observatory: str
    tag: str
    strain: str
    channels: tuple[ChannelSpec, ...]
    morphologies: tuple[Morphology, ...]
    self_glitches: tuple[SelfGlitches, ...]
    driver: str  # the channel recording scatterer motion
    glitch_rate_per_min: float = 1.0
    min_separation_s: float = 8.0
    snr_min: float = 5.0
    snr_index: float = 1.5  # strain SNR ~ Pareto(snr_min, index), capped at snr_max
    snr_max: float = 150.0
    witness_gain_range: tuple[float, float] = (0.8, 2.5)  # witness SNR = strain SNR x gain
    scripted: tuple[ScriptedGlitch, ...] = ()  # placed exactly, on top of the random process
    signals: tuple[Signal, ...] = ()  # gravitational-wave signals, in the strain only (no witness sees them)
    locks: LockSchedule | None = None  # locks and unlocks with their state vector (None: locked throughout, no state vector)

    def channel(self, name: str) -> ChannelSpec:
        return next(c for c in self.channels if c.name == name)

    def roles(self) -> dict[str, str]:
        return {c.name: c.role for c in self.channels}


# The GW170817 case: a binary neutron star chirp whose inspiral a loud blip (a witnessed family) crosses 0.9 s before the
# merger (GW170817's was 1.1 s), where the chirp sweeps through the blip's 140 Hz; in SIM's 17:25 window.
GW170817_MERGER_GPS = 1400002068.0
GW170817_SIGNAL = Signal("bns", GW170817_MERGER_GPS, snr=20.0, mass1=1.46, mass2=1.27)
GW170817_GLITCH = ScriptedGlitch(GW170817_MERGER_GPS - 0.9, "blip", snr=100.0, frequency=140.0, q=4.0)

VIRGO_SCENARIO = Scenario(
    observatory="V",
    tag="V1SIM",
    strain=STRAIN,
    channels=(
        ChannelSpec(STRAIN, 16384, "strain", "strain", lal_psd("SimNoisePSDAdVO3LowT1800545", 5.0)),
        ChannelSpec("V1:LSC_DARM_ERR", 16384, "ct", "witness", power_law_psd(1e-8, 30.0, 4.0)),
        ChannelSpec("V1:LSC_MICH_ERR", 4096, "ct", "witness", power_law_psd(1e-6, 20.0, 2.0)),
        ChannelSpec("V1:LSC_PRCL_ERR", 4096, "ct", "witness", power_law_psd(1e-6, 20.0, 2.0)),
        ChannelSpec("V1:SDB2_B1_PD1", 2048, "W", "witness", power_law_psd(1e-10, 10.0, 2.0)),
        ChannelSpec("V1:ENV_NEB_MAG_N", 1024, "T", "witness", power_law_psd(1e-22, 5.0, 2.0)),
        ChannelSpec("V1:ENV_CEB_SEIS_V", 256, "m/s", "driver", power_law_psd(1e-16, 1.0, 4.0)),
        ChannelSpec("V1:ENV_CEB_MIC_V", 8192, "Pa", "self_glitching", power_law_psd(1e-6, 50.0, 1.0)),
        ChannelSpec("V1:ASC_NE_TX_CORR", 512, "ct", "self_glitching", power_law_psd(1e-14, 10.0, 2.0)),
        ChannelSpec(
            "V1:ENV_CEB_UPS_CURR_R", 1024, "A", "line", power_law_psd(1e-4, 1.0, 1.0), lines=((50.0, 5.0), (150.0, 1.0), (250.0, 0.5))
        ),
        ChannelSpec("V1:SUSP_WE_F0_TZ", 256, "ct", "quiet", power_law_psd(1e-12, 2.0, 2.0)),
    ),
    morphologies=(
        Morphology(
            "blip",
            weight=0.35,
            witnesses=(("V1:LSC_DARM_ERR", 1.0), ("V1:LSC_MICH_ERR", 1.0), ("V1:LSC_PRCL_ERR", 0.6)),
            transfer_band=(15.0, 1500.0),
            delay_s=0.002,
            f0_range=(40.0, 150.0),
            q_range=(2.0, 5.0),
        ),
        Morphology(
            "scattered_light",
            weight=0.35,
            witnesses=(("V1:LSC_DARM_ERR", 1.0), ("V1:SDB2_B1_PD1", 1.0)),
            transfer_band=(4.0, 300.0),
            delay_s=0.0,
            f0_range=(20.0, 45.0),
        ),
        Morphology(
            "low_frequency_burst",
            weight=0.30,
            witnesses=(("V1:LSC_DARM_ERR", 1.0), ("V1:ENV_NEB_MAG_N", 1.0), ("V1:LSC_PRCL_ERR", 0.6)),
            transfer_band=(6.0, 200.0),
            delay_s=0.010,
            f0_range=(12.0, 45.0),
            q_range=(4.0, 12.0),
        ),
    ),
    self_glitches=(
        SelfGlitches("V1:ENV_CEB_MIC_V", 0.8, (30.0, 300.0), (3.0, 10.0), (10.0, 60.0)),
        SelfGlitches("V1:ASC_NE_TX_CORR", 0.8, (10.0, 45.0), (4.0, 10.0), (10.0, 60.0)),
    ),
    driver="V1:ENV_CEB_SEIS_V",
    scripted=(GW170817_GLITCH,),
    signals=(GW170817_SIGNAL,),
)


# Distractors for many-channel runs: real auxiliary channels are mostly slow (environment, suspensions).
EXTRA_RATES = (256, 256, 256, 512, 512, 1024, 1024, 2048, 4096, 8192, 16384)
EXTRA_KINDS = ("quiet", "line", "self_glitching", "sporadic")


def with_extra_channels(scenario: Scenario, n: int, seed: int = 0, rates: tuple[int, ...] = EXTRA_RATES) -> Scenario:
    """``scenario`` plus ``n`` auxiliary channels that witness nothing, ``<IFO>:SIMX_<KIND>_<i>``, in turn: plain
    noise, a line, frequent glitches of their own (0.5-1.5 a minute) and rare ones at random times (0.05-0.3 a
    minute), at ``rates`` drawn uniformly (by default 256-16384 Hz, mostly slow). Drawn from ``seed``; the scenario's
    own channels, glitches and noise are unchanged (extra channels come last, so every earlier channel keeps its
    random stream)."""
    if n < 0:
        raise ValueError(f"extra channels: {n} < 0")
    rng = np.random.default_rng([seed, n])
    ifo = scenario.strain.split(":")[0]
    channels, glitches = list(scenario.channels), list(scenario.self_glitches)
    for i in range(n):
        kind, rate = EXTRA_KINDS[i % len(EXTRA_KINDS)], int(rng.choice(rates))
        name = f"{ifo}:SIMX_{kind.upper()}_{i:04d}"
        psd = power_law_psd(10.0 ** rng.uniform(-12, -4), rng.uniform(1.0, 20.0), rng.uniform(1.0, 4.0))
        top = min(0.4 * rate, 300.0)  # below the channel's Nyquist frequency
        lines = ((round(rng.uniform(10.0, top), 1), rng.uniform(1.0, 5.0)),) if kind == "line" else ()
        channels.append(ChannelSpec(name, rate, "ct", "self_glitching" if kind in ("self_glitching", "sporadic") else kind, psd, lines))
        if kind in ("self_glitching", "sporadic"):
            per_min = rng.uniform(0.5, 1.5) if kind == "self_glitching" else rng.uniform(0.05, 0.3)
            glitches.append(SelfGlitches(name, per_min, (8.0, top), (3.0, 10.0), (10.0, 60.0)))
    return replace(scenario, channels=tuple(channels), self_glitches=tuple(glitches))


def with_locks(scenario: Scenario, origin_gps: float, **changes) -> Scenario:
    """``scenario`` with locks and unlocks from ``origin_gps`` on (:class:`~.locks.LockSchedule`, ``changes`` to its
    defaults), its strain glitchier after each lock acquisition and louder while unlocked, and a state-vector channel
    written beside the others (named by the schedule, on the strain's observatory)."""
    ifo = scenario.strain.split(":")[0]
    return replace(scenario, locks=LockSchedule(origin_gps, **{"channel": f"{ifo}:DQ_ANALYSIS_STATE_VECTOR", **changes}))
