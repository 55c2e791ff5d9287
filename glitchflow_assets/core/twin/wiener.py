"""The classical time-domain twin: a multi-channel Wiener filter from whitened witnesses to the whitened strain,
fitted on training events.

For each frequency the filter ``H[f, c]`` minimises ``sum_events |Y(f) - sum_c H[f, c] X_c(f)|^2`` over the
gated segments (``X``: witness spectra, ``Y``: strain spectrum), i.e. ``H = S_yx S_xx^-1`` with the cross-spectral
matrices smoothed over ``smoothing_bins`` neighbouring frequencies and a ridge of ``ridge`` x their mean power.
Witness noise would leak through ``H`` everywhere inside the gate, so each witness is first denoised by keeping only
its loud time-frequency pixels (STFT amplitude mask above ``mask_threshold`` x the segment's median noise power):
what is predicted is what the witnesses actually saw.

Stored as HDF5 (``H`` as real and imaginary parts, the settings as attributes): nothing pickled.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import istft, stft

from glitchflow_assets.core.artifacts.storage import open_artifact, write_artifact
from glitchflow_assets.core.twin.event_segments import EventSegments

SCHEMA = "glitchflow.wiener_filter"
SCHEMA_VERSION = 1
METHOD = "wiener"


@dataclass(frozen=True)
class WienerConfig:
    mask_threshold: float = 3.0  # witness STFT pixels louder than this x the noise power are kept (soft ramp to 2x)
    stft_s: float = 0.125  # s, STFT segment of the witness mask (75 % overlap)
    smoothing_bins: int = 65  # frequency bins (0.125 Hz each) averaged in the cross-spectra: chosen on validation (bench)
    ridge: float = 0.1  # regularisation, relative to the mean witness power per frequency


def denoise(witness: np.ndarray, sample_rate: float, config: WienerConfig) -> np.ndarray:
    """``witness`` ``[..., time]`` (whitened) with its quiet time-frequency pixels removed; same shape."""
    nperseg = int(config.stft_s * sample_rate)
    noverlap = 3 * nperseg // 4
    _, _, z = stft(witness, sample_rate, nperseg=nperseg, noverlap=noverlap, axis=-1)
    power = np.abs(z) ** 2
    noise = np.median(power, axis=-1, keepdims=True) / np.log(2.0) + 1e-30  # median of chi^2_2 -> its mean
    k = config.mask_threshold
    mask = np.clip((power / noise - k) / k, 0.0, 1.0)
    _, out = istft(z * mask, sample_rate, nperseg=nperseg, noverlap=noverlap)
    return out[..., : witness.shape[-1]]


def _spectra(segments: EventSegments, config: WienerConfig) -> np.ndarray:
    """Gated, denoised witness spectra ``[event, channel, freq]``."""
    gated = denoise(segments.witness, segments.sample_rate, config) * segments.gate[:, None]
    return np.fft.rfft(gated, axis=-1)


class WienerAccumulator:
    """Sums the cross-spectra of training events window by window; :meth:`solve` gives the filter."""

    def __init__(
        self,
        channels: list[str],
        sample_rate: float,
        n_samples: int,
        config: WienerConfig = WienerConfig(),
        witness_rates: dict[str, float] | None = None,
    ):
        self.channels, self.sample_rate, self.n_samples, self.config = channels, sample_rate, n_samples, config
        self.witness_rates = dict(witness_rates or {})
        nf, c = n_samples // 2 + 1, len(channels)
        self.sxx = np.zeros((nf, c, c), complex)
        self.syx = np.zeros((nf, c), complex)
        self.events = 0

    def add(self, segments: EventSegments) -> None:
        if segments.channels != self.channels or segments.witness.shape[-1] != self.n_samples:
            raise ValueError(f"segments of channels {segments.channels} / {segments.witness.shape[-1]} samples do not fit this filter")
        x = _spectra(segments, self.config)
        y = np.fft.rfft(segments.strain * segments.gate, axis=-1)
        self.sxx += np.einsum("ecf,edf->fcd", x, x.conj())
        self.syx += np.einsum("ef,edf->fd", y, x.conj())
        self.events += len(segments)

    def solve(self) -> "WienerFilter":
        if self.events == 0:
            raise ValueError("no training events: cannot fit a Wiener filter")
        k = self.config.smoothing_bins
        smooth = lambda a: uniform_filter1d(a.real, k, axis=0) + 1j * uniform_filter1d(a.imag, k, axis=0)  # noqa: E731
        sxx, syx = smooth(self.sxx), smooth(self.syx)
        c = len(self.channels)
        level = np.trace(sxx, axis1=1, axis2=2).real / c
        ridge = self.config.ridge * np.maximum(level, 1e-30)[:, None, None] * np.eye(c)
        # H S_xx = S_yx  <=>  S_xx^T H^T = S_yx^T, per frequency
        h = np.linalg.solve((sxx + ridge).transpose(0, 2, 1), syx[..., None])[..., 0]
        return WienerFilter(h, self.channels, self.sample_rate, self.n_samples, self.config, self.events, self.witness_rates)


@dataclass
class WienerFilter:
    """``h`` ``[freq, channel]`` on the rfft grid of ``n_samples`` at ``sample_rate``."""

    h: np.ndarray
    channels: list[str]
    sample_rate: float
    n_samples: int
    config: WienerConfig
    training_events: int
    witness_rates: dict[str, float] = field(default_factory=dict)  # native rates (Hz) it was fitted on; {}: not recorded

    def predict(self, segments: EventSegments) -> np.ndarray:
        """The whitened strain glitch ``[event, time]`` predicted from the witnesses alone, zero outside each gate."""
        if segments.channels != self.channels:
            raise ValueError(f"filter fitted on witnesses {self.channels}, segments carry {segments.channels}")
        p = np.fft.irfft(np.einsum("fc,ecf->ef", self.h, _spectra(segments, self.config)), self.n_samples, axis=-1)
        return p * segments.gate

    def write(self, group: h5py.Group) -> None:
        """Into an open HDF5 file or group: ``h`` as real and imaginary datasets, the settings as its attributes."""
        group.create_dataset("h_real", data=self.h.real)
        group.create_dataset("h_imag", data=self.h.imag)
        group.attrs.update(
            {
                "channels": json.dumps(self.channels),
                "sample_rate": self.sample_rate,
                "n_samples": self.n_samples,
                "config": json.dumps(asdict(self.config)),
                "training_events": self.training_events,
                "witness_rates": json.dumps(self.witness_rates),
            }
        )

    @staticmethod
    def read(group: h5py.Group) -> "WienerFilter":
        """The filter :meth:`write` stored in ``group``."""
        a = group.attrs
        return WienerFilter(
            group["h_real"][()] + 1j * group["h_imag"][()],
            json.loads(a["channels"]),
            float(a["sample_rate"]),
            int(a["n_samples"]),
            WienerConfig(**json.loads(a["config"])),
            int(a["training_events"]),
            json.loads(a.get("witness_rates", "{}")),
        )

    def save(self, path: str | Path, attrs: dict) -> None:
        with write_artifact(path, SCHEMA, SCHEMA_VERSION) as f:
            self.write(f)
            f.attrs.update({"method": METHOD, **attrs})

    @staticmethod
    def load(path: str | Path) -> "WienerFilter":
        with open_artifact(path, SCHEMA, (SCHEMA_VERSION,)) as f:
            return WienerFilter.read(f)
