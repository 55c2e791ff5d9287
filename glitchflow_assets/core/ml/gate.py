"""The model quality gate: which trained versions may become the run's ``champion``.

A model passes only if, on the validation split,

* its outputs are sound: finite, and not the same tile whatever the witnesses say;
* there are enough glitch events to judge by (``min_validation_events``);
* its glitch detection reaches ``min_balanced_accuracy`` (the generated tile maximum against the real label, at the
  threshold chosen on that split);
* it beats the linear witness baseline on glitch tiles (L1, SNR^2): what a classical regression gets from the same
  witnesses. Beating an all-zero or a mean tile proves nothing - a model that outputs the noise floor does.
"""

from dataclasses import dataclass, field

from glitchflow_assets.core.ml.bundle import MODEL
from glitchflow_assets.core.ml.evaluation import Report

LINEAR_BASELINE = "linear_witness"


@dataclass(frozen=True)
class GateConfig:
    min_balanced_accuracy: float = 0.9
    min_validation_events: int = 30  # validation events holding a glitch tile
    # False only to exercise the platform on data too small to judge a model by (soundness is always required)
    beat_linear_baseline: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_balanced_accuracy <= 1.0 or self.min_validation_events < 1:
            raise ValueError(
                f"min_balanced_accuracy {self.min_balanced_accuracy} must be in [0, 1] and min_validation_events "
                f"{self.min_validation_events} >= 1"
            )

    def describe(self) -> str:
        """The gate in a few words, for the UI."""
        baseline = ", glitch-tile L1 below the linear witness baseline" if self.beat_linear_baseline else ""
        return (
            f"On validation: finite outputs that follow the witnesses, at least {self.min_validation_events} glitch events, "
            f"glitch-detection balanced accuracy at least {self.min_balanced_accuracy:g}{baseline}"
        )


@dataclass(frozen=True)
class Verdict:
    passed: bool
    failures: list[str] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        v = self.values
        measured = (
            f"validation balanced accuracy {v['balanced_accuracy']:.3f} (limit {v['min_balanced_accuracy']:.2f}) on "
            f"{v['glitch_events']:.0f} glitch events (limit {v['min_validation_events']:.0f}); glitch-tile L1 "
            f"{v['l1_glitch']:.3f} vs linear witness {v['l1_glitch_linear_witness']:.3f} SNR^2"
            if "balanced_accuracy" in v
            else ""
        )
        return ("; ".join(self.failures) + (". " if measured else "") if self.failures else "") + measured


def judge(validation: Report, config: GateConfig = GateConfig()) -> Verdict:
    """The gate's verdict on a validation report that holds the model and the linear witness baseline."""
    if problems := validation.problems(MODEL):
        return Verdict(False, problems)
    model, linear = validation.headline(MODEL), validation.headline(LINEAR_BASELINE)
    events = validation.counts()["glitch_events"]
    values = {
        "balanced_accuracy": model["balanced_accuracy"].value,
        "min_balanced_accuracy": config.min_balanced_accuracy,
        "glitch_events": float(events),
        "min_validation_events": float(config.min_validation_events),
        "l1_glitch": model["l1_glitch"].value,
        "l1_glitch_linear_witness": linear["l1_glitch"].value,
    }
    failures = []
    if events < config.min_validation_events:
        failures.append(f"only {events} validation glitch events (need {config.min_validation_events}): materialize more windows")
    if not values["balanced_accuracy"] >= config.min_balanced_accuracy:  # NaN fails too
        failures.append(f"balanced accuracy {values['balanced_accuracy']:.3f} below {config.min_balanced_accuracy:.2f}")
    if config.beat_linear_baseline and not values["l1_glitch"] < values["l1_glitch_linear_witness"]:
        failures.append(
            f"glitch-tile L1 {values['l1_glitch']:.3f} not below the linear witness baseline's {values['l1_glitch_linear_witness']:.3f}"
        )
    return Verdict(not failures, failures, values)
