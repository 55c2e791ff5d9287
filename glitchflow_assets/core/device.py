"""Run-time device choice for the torch steps: CUDA when present, else CPU (same code path)."""

import torch


def select_device(preference: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` if available else ``cpu``; ``cpu``/``cuda``/``cuda:N`` are taken as given."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} requested but no CUDA device is available")
    return device
