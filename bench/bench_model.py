"""Model throughput: training and inference tiles/s of the original-size U-Net (8 witnesses, 64x64 tiles).

Baseline = the original, faithfully: fp32, eager, the explicit [H*W, H*W] attention matrix, contiguous tensors,
batch 10. Ours = the same function through scaled_dot_product_attention, channels_last, bf16 autocast on CUDA
(and ``--compile``). On CPU a third row shows the configuration the small CPU model uses: keys pooled 4x4
(a different, cheaper function). All rows run in the same process on the same inputs.

    .venv/bin/python bench/bench_model.py [--device cuda] [--compile] [--steps 5]
"""

import argparse
import contextlib
import dataclasses
import platform
import time

import torch

from glitchflow_assets.core.ml.model import AttentionUNet, ModelConfig, parameter_count
from glitchflow_assets.core.ml.training import TrainConfig, glitch_loss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(config: ModelConfig, device: torch.device, batch: int, steps: int, fast: bool, compile_model: bool) -> tuple[float, float]:
    """(training tiles/s, inference tiles/s), best of ``steps`` after one warm-up step."""
    torch.manual_seed(0)
    model = AttentionUNet(config).to(device)
    x = torch.rand(batch, config.n_aux, 64, 64, device=device)
    y = torch.rand(batch, 1, 64, 64, device=device)
    if fast:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    step_model = torch.compile(model) if compile_model else model
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if fast and device.type == "cuda" else contextlib.nullcontext()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_config = TrainConfig()

    def train_step() -> None:
        with amp:
            out = step_model(x)
        loss = glitch_loss(out, y, loss_config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step() -> None:
        with torch.no_grad(), amp:
            step_model(x)

    rates = []
    for step, mode in ((train_step, True), (infer_step, False)):
        model.train(mode)
        step()  # warm-up (and compilation)
        best = float("inf")
        for _ in range(steps):
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            best = min(best, time.perf_counter() - start)
        rates.append(batch / best)
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=10, help="the original's batch size")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="torch.compile our model")
    args = parser.parse_args()
    device = torch.device(args.device)
    original = ModelConfig.original(8)
    rows = [
        ("baseline: fp32 eager, explicit attention matrix", dataclasses.replace(original, attention="naive"), False, False),
        ("ours: SDPA, channels_last" + (", bf16" if device.type == "cuda" else ""), original, True, args.compile),
    ]
    if device.type == "cpu":  # separate the two changes, then the CPU model's cheaper attention
        rows.append(("SDPA alone (contiguous)", original, False, False))
        rows.append(("channels_last alone (explicit matrix)", dataclasses.replace(original, attention="naive"), True, False))
        rows.append(("ours + keys pooled 4x4 (CPU configuration)", dataclasses.replace(original, key_pool=4), True, False))
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}")
    print(f"model: {parameter_count(AttentionUNet(original)) / 1e6:.1f} M parameters, batch {args.batch}, best of {args.steps}")
    print("| variant | train tiles/s | x baseline | inference tiles/s | x baseline |")
    print("|---|---:|---:|---:|---:|")
    base = None
    for name, config, fast, compile_model in rows:
        train_rate, infer_rate = measure(config, device, args.batch, args.steps, fast, compile_model)
        base = base or (train_rate, infer_rate)
        print(f"| {name} | {train_rate:.1f} | {train_rate / base[0]:.2f} | {infer_rate:.1f} | {infer_rate / base[1]:.2f} |")


if __name__ == "__main__":
    main()
