"""Arrays stacked over layers, computed one layer at a time, for a saver that never holds the stack."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping

import numpy as np
from tqdm.auto import tqdm


class LayerStream(Mapping[str, np.ndarray]):
    """name -> (L, ...) array, whose layer i is `layer_arrays(i)[name]` (no layer axis there).

    NpzDataset saves a LayerStream one layer at a time, holding one layer in memory and never the
    stack: the eigen stage of an 8B model writes 33 layers of 4,096^2 subspaces. Read as a mapping
    (a node's output held in memory, as in the pipeline slices the tests run), every layer is
    computed once and the stacks are kept.
    """

    def __init__(self, n_layers: int, layer_arrays: Callable[[int], dict[str, np.ndarray]], description: str):
        """description names the work on the progress bar."""
        self.n_layers = n_layers
        self.layer_arrays = layer_arrays
        self.description = description

    def layers(self) -> Iterator[dict[str, np.ndarray]]:
        """Each layer's arrays in turn, computed as they are asked for."""
        for layer in tqdm(range(self.n_layers), desc=self.description, unit="layer"):
            yield self.layer_arrays(layer)

    @functools.cached_property
    def _stacked(self) -> dict[str, np.ndarray]:
        layers = list(self.layers())
        return {name: np.stack([arrays[name] for arrays in layers]) for name in layers[0]}

    def __getitem__(self, name: str) -> np.ndarray:
        return self._stacked[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._stacked)

    def __len__(self) -> int:
        return len(self._stacked)
