"""kedro-mlflow's MlflowArtifactDataset, with the wrapped dataset versioned by the run.

kedro-mlflow builds the wrapped dataset itself, so a `versioned: true` inside it gets a save
timestamp of its own, which Kedro's catalog refuses (every dataset of a run must share the run's
save version). Here the entry is versioned at the outer level, Kedro hands over the run's
Version, and it is given to the wrapped dataset.

kedro-mlflow's instances belong to a class made on the fly, which pickle cannot name; they are
pickled as the call that rebuilds them, so that ParallelRunner and Dask workers can receive them.
"""

from __future__ import annotations

import functools
from typing import Any

from kedro.io.core import Version
from kedro_mlflow.io.artifacts import MlflowArtifactDataset


class VersionedMlflowArtifactDataset(MlflowArtifactDataset):
    def __new__(cls, dataset: str | dict, version: Version | None = None, **kwargs: Any):
        artifact = MlflowArtifactDataset.__new__(MlflowArtifactDataset, dataset=dataset, **kwargs)
        if version is not None:
            artifact._version = version
        rebuild = functools.partial(VersionedMlflowArtifactDataset, dataset=dataset, version=version, **kwargs)
        type(artifact).__reduce__ = lambda self: (rebuild, ())
        return artifact
