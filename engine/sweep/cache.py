"""The trial cache: every finished trial of a sweep, kept as `OUT/trials/<key>.json` (the
JSON of `model.result_to_dict`) the moment it finishes, so that a sweep stopped anywhere (Ctrl-C,
a machine lost) keeps its work and a rerun of the same sweep runs only what is missing.

A trial's key (`tradingd.cli.trial.key_of`) names everything its result depends on, so a kept
result is reused as it is. What is kept: trials that ran ("ok") and trials that failed by
themselves (the backtest raised: the same trial raises again). Not kept: failures of the place
it ran, which a rerun may not meet: a worker lost beyond its attempts ("worker lost ...") and
data a worker could not read (`DataUnreadable`, fixed by mounting the data)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import orjson
import structlog

from .model import TrialResult, result_from_dict, result_to_dict

__all__ = ["NOT_KEPT", "TrialStore"]

# The errors (their start) of failures that are the worker's, not the trial's.
NOT_KEPT = ("worker lost", "DataUnreadable:")

_log = structlog.get_logger("tradingd.sweep")


class TrialStore:
    """`OUT/trials/<key>.json`, one file per trial, each written whole or not at all (a
    temporary file in the same folder, then `os.replace`): a reader never sees half a file,
    and two workers finishing the same key leave one of two equal files."""

    def __init__(self, out: Path) -> None:
        self.directory = Path(out) / "trials"

    def path_of(self, key: str) -> Path:
        if not key or not key.isalnum():  # a key is a hex digest: never a path of its own
            raise ValueError(f"not a trial key: {key!r}")
        return self.directory / f"{key}.json"

    def get(self, key: str) -> TrialResult | None:
        """The kept result of `key`, or None: not there, or damaged (cut short, not JSON, not a
        result, another key's): logged and ignored, so the trial runs again and replaces it."""
        path = self.path_of(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            _log.warning("sweep.trial_cache_unreadable", path=str(path), error=exc.strerror or str(exc))
            return None
        try:
            result = result_from_dict(orjson.loads(data))
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            _log.warning("sweep.trial_cache_damaged", path=str(path), error=str(exc).splitlines()[0])
            return None
        if result.key != key:
            _log.warning("sweep.trial_cache_damaged", path=str(path), error=f"holds trial {result.key}")
            return None
        return result

    def keeps(self, result: TrialResult) -> bool:
        """Whether `put` keeps `result` (module docstring)."""
        return result.status == "ok" or not (result.error or "").startswith(NOT_KEPT)

    def put(self, result: TrialResult) -> None:
        """Keep `result` under its key (atomically), unless it is a worker's failure."""
        if not self.keeps(result):
            return
        path = self.path_of(result.key)
        self.directory.mkdir(parents=True, exist_ok=True)
        # Its number, role and fold are this sweep's; a rerun that finds it sets its own.
        data = orjson.dumps(result_to_dict(result), option=orjson.OPT_SORT_KEYS)
        fd, tmp = tempfile.mkstemp(prefix=f".{result.key}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.json")) if self.directory.is_dir() else 0
