"""The spectrogram model's quality gate, epoch by epoch, on a materialized dataset: why the demo trains a fixed number
of epochs and not for a wall-clock budget.

Trains exactly as ``trained_model`` does (TrainConfig defaults, seeded) for ``--epochs`` epochs and, after every epoch,
judges the current weights with the gate ``trained_model`` applies to the best checkpoint (validation balanced
accuracy, glitch events, glitch-tile L1 below the linear witness baseline's). Prints one line per epoch and the best
checkpoint's verdict; with a wall-clock budget the last epoch reached, hence the best checkpoint and the verdict,
follow the machine's load.

    .venv/bin/python bench/training_curve.py ~/.glitchflow/storage/SIM/dataset_split/SIM-dataset_split.h5 --epochs 24
"""

import argparse
import copy
import time

import torch

from glitchflow_assets.core.ml.bundle import GlitchModel
from glitchflow_assets.core.ml.data import load_split, read_normalisation
from glitchflow_assets.core.ml.gate import GateConfig, judge
from glitchflow_assets.core.ml.model import AttentionUNet
from glitchflow_assets.core.ml.pipeline import model_config_for, validation_report
from glitchflow_assets.core.ml.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device, config = torch.device("cpu"), TrainConfig(epochs=args.epochs, seed=args.seed)
    normalisation = read_normalisation(args.dataset, config.representation)
    train_set, validation_set = (load_split(args.dataset, s, normalisation) for s in ("train", "validation"))
    torch.manual_seed(config.seed)  # as train_and_register: the initialisation is part of the seeded result
    network = AttentionUNet(model_config_for(config, len(normalisation.aux_channels), device))

    def gate_of(net: torch.nn.Module) -> str:
        verdict = judge(validation_report(GlitchModel(net.cpu().eval(), normalisation, {}), args.dataset, device), GateConfig())
        v, passed = verdict.values, "passed" if verdict.passed else "FAILED"
        return f"gate {passed}: L1 {v['l1_glitch']:.3f} vs {v['l1_glitch_linear_witness']:.3f}, BA {v['balanced_accuracy']:.3f}"

    def on_epoch(metrics: dict) -> None:
        loss, seconds = metrics["validation_loss"], metrics["seconds"]
        print(f"epoch {metrics['epoch']}: validation loss {loss:.4f}, {seconds:.0f} s; {gate_of(copy.deepcopy(network))}", flush=True)
        network.train()

    t0 = time.perf_counter()
    result = train(network, train_set, validation_set, config, device, on_epoch, normalisation.physical_snr2(config.glitch_pixel_snr2))
    print(f"best checkpoint: epoch {result.best_epoch} of {args.epochs} ({time.perf_counter() - t0:.0f} s); {gate_of(network)}")


if __name__ == "__main__":
    main()
