"""Resources shared by every run family."""

from pathlib import Path

import dagster as dg

from glitchflow_assets.core.ml.tracking import Tracker
from glitchflow_assets.core.runs.windows import Window
from glitchflow_assets.core.settings import storage_root


class GlitchflowStorage(dg.ConfigurableResource):
    """Where asset partitions live: ``ROOT/RUN/ASSET/RUN-ASSET-GPS-DUR.h5`` (one HDF5 file per partition).

    ``root`` empty means ``$GLITCHFLOW_STORAGE`` or ``$GLITCHFLOW_HOME/storage``.
    """

    root: str = ""

    def base(self) -> Path:
        return Path(self.root).expanduser().resolve() if self.root else storage_root()

    def window_file(self, run: str, asset: str, window: Window) -> Path:
        # run names and windows are validated upstream (registry regex, partition-key parsing); every
        # component here is therefore a plain identifier or an integer.
        return self.base() / run / asset / f"{run}-{asset}-{window.gps_start}-{window.duration}.h5"

    def lock_file(self, run: str, asset: str, window: Window) -> Path:
        """The write lock of one window of ``asset``: ``ROOT/.locks/RUN/ASSET/RUN-ASSET-GPS-DUR.lock`` (kept apart, so
        that asset folders hold artifacts only)."""
        return self.base() / ".locks" / run / asset / f"{run}-{asset}-{window.gps_start}-{window.duration}.lock"

    def run_file(self, run: str, asset: str, suffix: str = ".h5") -> Path:
        """The file of a run-level asset: ``ROOT/RUN/ASSET/RUN-ASSET<suffix>``."""
        return self.base() / run / asset / f"{run}-{asset}{suffix}"


class MlflowTracking(dg.ConfigurableResource):
    """The MLflow tracking store and registry. Empty ``tracking_uri``: ``$MLFLOW_TRACKING_URI``, else the embedded
    SQLite store under ``$GLITCHFLOW_HOME/mlflow``."""

    tracking_uri: str = ""

    def tracker(self) -> Tracker:
        return Tracker(self.tracking_uri)
