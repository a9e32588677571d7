#!/usr/bin/env python3
"""Writes the example forecaster's model package into OUTDIR (a few KB).

    make_package.py OUTDIR

The package mirrors FourCastNet's in Earth2Studio: an archive with the
network (forecaster.zip: config.json and weights.safetensors), plus the
normalisation statistics as NumPy files. It also writes initial_state.npy (a
state to start from) and expected_forecast.npy (what six steps from it give,
computed here with NumPy, which the C++ model must reproduce).

The network is a residual MLP on a handful of global-mean variables:
    x[t+1] = x[t] + std * (W2 @ tanh(W1 @ ((x[t] - mean) / std) + b1) + b2)
Its weights are seeded pseudo-random numbers: the numbers mean nothing, the
arithmetic is real. Needs numpy (Debian: python3-numpy).
"""

import json
import os
import struct
import sys
import zipfile

import numpy as np

VARIABLES = ["t2m", "u10", "v10", "msl", "tcwv"]
HIDDEN = 16
STEPS = 6


def safetensors_bytes(tensors, metadata):
    """The safetensors format: 8-byte little-endian header length, JSON, data."""
    header = {"__metadata__": metadata}
    data = b""
    for name, array in tensors.items():
        array = np.ascontiguousarray(array, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [len(data), len(data) + array.nbytes]}
        data += array.tobytes()
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data section starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text + data


def step(x, mean, std, w):
    h = np.tanh(w["w1"] @ ((x - mean) / std) + w["b1"])
    return x + std * (w["w2"] @ h + w["b2"])


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240601)
    n = len(VARIABLES)
    weights = {
        "w1": (rng.standard_normal((HIDDEN, n)) / np.sqrt(n)).astype(np.float32),
        "b1": (0.1 * rng.standard_normal(HIDDEN)).astype(np.float32),
        "w2": (0.05 * rng.standard_normal((n, HIDDEN)) / np.sqrt(HIDDEN)).astype(np.float32),
        "b2": (0.01 * rng.standard_normal(n)).astype(np.float32),
    }
    mean = np.array([287.0, 0.5, -0.2, 101325.0, 24.0], dtype=np.float32)
    std = np.array([15.0, 5.0, 4.5, 1200.0, 16.0], dtype=np.float32)
    state = (mean + std * rng.standard_normal(n)).astype(np.float32)

    config = {"variables": VARIABLES, "hidden": HIDDEN, "dt_hours": 6}
    with zipfile.ZipFile(os.path.join(out, "forecaster.zip"), "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("forecaster/config.json", json.dumps(config, indent=2) + "\n")
        archive.writestr("forecaster/weights.safetensors",
                         safetensors_bytes(weights, {"format": "pt", "model": "residual-mlp"}))
    np.save(os.path.join(out, "global_means.npy"), mean)
    np.save(os.path.join(out, "global_stds.npy"), std)
    np.save(os.path.join(out, "initial_state.npy"), state)

    # The reference forecast, in float32 as the C++ model computes it.
    x = state
    forecast = []
    for _ in range(STEPS):
        x = step(x, mean, std, weights).astype(np.float32)
        forecast.append(x)
    np.save(os.path.join(out, "expected_forecast.npy"), np.stack(forecast))


if __name__ == "__main__":
    main()
