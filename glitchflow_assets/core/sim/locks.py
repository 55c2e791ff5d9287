"""Locks and unlocks of the simulated interferometer, and the state-vector channel that records them.

A real detector is locked (resonant, its strain meaningful) for minutes to hours, loses lock, and spends minutes
acquiring it again; the first minutes after an acquisition are glitchier, and the strain is garbage while unlocked.
:class:`LockSchedule` draws that history from a seed as a pure function of GPS (simulating ``[a, b)`` then
``[b, c)`` gives the frames of ``[a, c)``): the detector is locked at ``origin_gps`` (a lock acquired earlier) for
``first_lock_s``, then alternates unlocks and locks of log-uniform durations.

The state vector is Virgo-style (``V1:DQ_ANALYSIS_STATE_VECTOR``): bit 0 ``LOCKED``, bit 1 ``SCIENCE`` (set
``science_delay_s`` after each acquisition, as operators switch to observing), bit 2 ``HREC_OK`` (the h(t)
reconstruction runs whenever the detector is locked). Observing segments are where bits 1 and 2 are both set.
"""

from dataclasses import dataclass

import numpy as np

LOCKED, SCIENCE, HREC_OK = 0, 1, 2
BIT_NAMES = ("LOCKED", "SCIENCE", "HREC_OK")


@dataclass(frozen=True)
class LockSchedule:
    origin_gps: float  # locked here (the lock was acquired before), for first_lock_s
    channel: str = "V1:DQ_ANALYSIS_STATE_VECTOR"
    sample_rate: int = 16  # Hz, as LIGO's and Virgo's state vectors
    first_lock_s: float = 3600.0
    lock_s: tuple[float, float] = (1200.0, 8 * 3600.0)  # lock durations, log-uniform between these
    unlock_s: tuple[float, float] = (120.0, 1800.0)  # unlock durations, log-uniform between these
    science_delay_s: float = 60.0  # from lock acquisition to the SCIENCE bit
    acquisition_s: float = 600.0  # the glitchier stretch after each acquisition
    acquisition_rate_factor: float = 4.0  # the strain glitch rate there, times the scenario's
    unlock_noise_factor: float = 30.0  # the strain's amplitude while unlocked, times the locked one's


def lock_spans(schedule: LockSchedule, seed: int, gps_end: float) -> list[tuple[float, float]]:
    """The locked spans ``[(acquired, lost), ...]`` from ``origin_gps`` until past ``gps_end`` (the first one starts at
    ``-inf``: the detector was locked before the schedule began); drawn from ``seed`` alone."""
    rng = np.random.default_rng([seed, 6])
    spans = [(-np.inf, schedule.origin_gps + schedule.first_lock_s)]
    while spans[-1][1] < gps_end:
        acquired = spans[-1][1] + float(np.exp(rng.uniform(*np.log(schedule.unlock_s))))
        spans.append((acquired, acquired + float(np.exp(rng.uniform(*np.log(schedule.lock_s))))))
    return spans


def acquisitions(schedule: LockSchedule, seed: int, gps_start: float, gps_end: float) -> list[tuple[float, float]]:
    """The glitchier stretches ``[(acquired, acquired + acquisition_s), ...]`` that overlap ``[gps_start, gps_end)``."""
    spans = lock_spans(schedule, seed, gps_end)[1:]  # the first lock was acquired before the schedule
    return [(a, a + schedule.acquisition_s) for a, _ in spans if a < gps_end and a + schedule.acquisition_s > gps_start]


def state_vector(schedule: LockSchedule, seed: int, gps_start: float, n: int) -> np.ndarray:
    """The state vector ``[n]`` (uint32 bitmask) at ``schedule.sample_rate`` from ``gps_start``."""
    t = gps_start + np.arange(n) / schedule.sample_rate
    out = np.zeros(n, dtype=np.uint32)
    for acquired, lost in lock_spans(schedule, seed, t[-1] + 1.0 if n else gps_start):
        locked = (t >= acquired) & (t < lost)
        out[locked] |= (1 << LOCKED) | (1 << HREC_OK)
        out[locked & (t >= acquired + schedule.science_delay_s)] |= 1 << SCIENCE
    return out


def strain_gain(schedule: LockSchedule, seed: int, gps_start: float, n: int, sample_rate: float) -> np.ndarray:
    """The factor ``[n]`` on the strain at ``sample_rate`` from ``gps_start``: 1 while locked, ``unlock_noise_factor``
    while unlocked."""
    t = gps_start + np.arange(n) / sample_rate
    gain = np.full(n, schedule.unlock_noise_factor)
    for acquired, lost in lock_spans(schedule, seed, t[-1] + 1.0 if n else gps_start):
        gain[(t >= acquired) & (t < lost)] = 1.0
    return gain
