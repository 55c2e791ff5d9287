"""Frame simulator: Virgo-like strain and auxiliary channels with injected glitches and known ground truth."""

from glitchflow_assets.core.sim.scenario import VIRGO_SCENARIO, ChannelSpec, Scenario, ScriptedGlitch, with_extra_channels, with_locks
from glitchflow_assets.core.sim.signals import Signal
from glitchflow_assets.core.sim.simulator import SimulationResult, load_signals, load_truth, simulate

__all__ = [
    "VIRGO_SCENARIO",
    "ChannelSpec",
    "Scenario",
    "ScriptedGlitch",
    "Signal",
    "SimulationResult",
    "load_signals",
    "load_truth",
    "simulate",
    "with_extra_channels",
    "with_locks",
]
