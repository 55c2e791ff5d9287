"""Real PostgreSQL and MLflow servers on 127.0.0.1 for the production tests, started and stopped by the tests
themselves (so fault tests can restart them). PostgreSQL comes from Debian's packages (``.ci/run`` installs
them); a missing installation is a test failure naming the package, never a skip.
"""

import glob
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from glitchflow_assets_tests.services import free_port, wait_for

BIN = Path(sys.executable).parent


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL server binaries not found: install Debian's `postgresql` package (.ci/run does)")
    return Path(found[-1]).parent


def _as_postgres_user(args: list[str]) -> list[str]:
    """initdb/postgres refuse to run as root: drop to the `postgres` system user when we are root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str], **kwargs) -> None:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}")


@dataclass
class PostgresServer:
    """A throw-away cluster: password authentication over TCP on 127.0.0.1 only. Its directory is made under
    the system temp dir (the ``postgres`` user must be able to reach it when we run as root)."""

    port: int = field(default_factory=free_port)
    user: str = "glitchflow"
    password: str = field(default_factory=lambda: secrets.token_hex(12))

    def __post_init__(self) -> None:
        self.bin = _postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="glitchflow-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "pgdata"
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(pwfile, "postgres")
        subprocess.run(
            _as_postgres_user(
                [str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}", "-A", "scram-sha-256"]
            ),
            check=True,
            capture_output=True,
        )
        pwfile.unlink()

    def _ctl(self, *args: str) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        subprocess.run(
            _as_postgres_user(
                [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-o", options, "-w", *args]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def create_database(self, name: str) -> None:
        env = dict(os.environ, PGPASSWORD=self.password)
        _run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres", "-c", f'CREATE DATABASE "{name}"'], env=env
        )

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def dagster_env(self, database: str) -> dict[str, str]:
        """The environment deploy/dagster.yaml reads its credentials from."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": database,
        }


@dataclass
class _HttpServer:
    """A server process on 127.0.0.1 answering HTTP, started in its own session (stopped with everything it forks)."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    health_path = "/"
    name = "server"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, args: list[str], env: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"{self.name}.log", "ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_for(self._healthy, 180, f"the {self.name} server on {self.uri} (log: {self.root / f'{self.name}.log'})")

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} server exited with {self.process.returncode}; see {self.root / f'{self.name}.log'}")
        try:
            with urllib.request.urlopen(f"{self.uri}{self.health_path}", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None


@dataclass
class MlflowServer(_HttpServer):
    """``mlflow server`` on 127.0.0.1 with a PostgreSQL backend store and proxied local artifacts."""

    backend_uri: str = ""
    health_path = "/health"
    name = "mlflow"

    def start(self) -> None:
        # The backend URI carries the password: through the environment, never on the command line (ps shows that).
        env = dict(
            os.environ,
            MLFLOW_DISABLE_TELEMETRY="true",
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
            MLFLOW_BACKEND_STORE_URI=self.backend_uri,
        )
        args = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        args += ["--artifacts-destination", str(self.root / "artifacts"), "--serve-artifacts"]
        self._spawn(args, env)


@dataclass
class DatafindServer(_HttpServer):
    """A real ``gwdatafind-server`` (the LIGO/Virgo data-discovery service, a Flask app) on 127.0.0.1, serving the Virgo
    FFL files under ``root/ffl`` and a LIGO diskcache dump ``root/diskcache.txt`` (0x0101 format, any extension),
    re-read every ``interval`` s as a site's server re-reads its sources."""

    interval: int = 1
    health_path = "/api/version"
    name = "gwdatafind"

    @property
    def ffl_dir(self) -> Path:
        return self.root / "ffl"

    @property
    def diskcache(self) -> Path:
        return self.root / "diskcache.txt"

    def start(self) -> None:
        self.ffl_dir.mkdir(parents=True, exist_ok=True)
        self.diskcache.touch()
        config = self.root / "gwdatafind-server.toml"
        config.write_text(
            f'[[input.source]]\ntype = "ffl"\npath = "{self.ffl_dir}"\ninterval = {self.interval}\n\n'
            f'[[input.source]]\ntype = "diskcache"\npath = "{self.diskcache}"\ninterval = {self.interval}\n'
        )
        env = dict(os.environ, GWDATAFIND_SERVER_CONFIG=str(config))
        args = [str(BIN / "python"), "-m", "flask", "--app", "gwdatafind_server:create_app()", "run"]
        self._spawn(args + ["--host", "127.0.0.1", "--port", str(self.port)], env)
