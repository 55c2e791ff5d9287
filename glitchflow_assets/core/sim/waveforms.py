"""Glitch waveforms, evaluated analytically at arbitrary sample times ``t`` (seconds from the peak)."""

import numpy as np


def sine_gaussian(t: np.ndarray, f0: float, q: float, phase: float = 0.0) -> np.ndarray:
    """Unit-amplitude sine-Gaussian: ``exp(-(t/tau)^2) sin(2 pi f0 t + phase)``, tau = Q / (sqrt(2) pi f0)."""
    tau = q / (np.sqrt(2.0) * np.pi * f0)
    return np.exp(-((t / tau) ** 2)) * np.sin(2 * np.pi * f0 * t + phase)


def sine_gaussian_half_length(f0: float, q: float) -> float:
    """Half-length (s) beyond which a sine-Gaussian is below 1e-10 of its peak."""
    return 5.0 * q / (np.sqrt(2.0) * np.pi * f0)


def scattered_light_fringe(t: np.ndarray, f_mod: float, f_fringe: float, n_arches: int, phase: float = 0.0) -> np.ndarray:
    """Scattered-light arches: ``env(t) sin(phi(t))`` with ``phi = (f_fringe / f_mod) sin(2 pi f_mod t)``.

    A scatterer moving as ``x(t) ∝ sin(2 pi f_mod t)`` produces a fringe of instantaneous frequency
    ``f_fringe |cos(2 pi f_mod t)|``: arches in a spectrogram, each one half motion period long, the
    apex (highest frequency) at ``t = 0``. The envelope spans ``n_arches`` half-periods (Tukey taper).
    """
    half = n_arches / (4.0 * f_mod)
    phi = (f_fringe / f_mod) * np.sin(2 * np.pi * f_mod * t) + phase
    return tukey_envelope(t, half) * np.sin(phi)


def scatterer_motion(t: np.ndarray, f_mod: float, n_arches: int) -> np.ndarray:
    """The slow motion that drives :func:`scattered_light_fringe` (what a seismometer records), unit peak."""
    return tukey_envelope(t, n_arches / (4.0 * f_mod) + 1.0 / f_mod) * np.sin(2 * np.pi * f_mod * t)


def tukey_envelope(t: np.ndarray, half: float, taper: float = 0.3) -> np.ndarray:
    """1 inside ``|t| < half (1 - taper)``, cosine-tapered to 0 at ``|t| = half``."""
    x = np.abs(t) / half
    env = np.where(x < 1 - taper, 1.0, 0.5 * (1 + np.cos(np.pi * (x - (1 - taper)) / taper)))
    return np.where(x >= 1, 0.0, env)
