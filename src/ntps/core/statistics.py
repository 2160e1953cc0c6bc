"""Streaming per-layer second-moment statistics of Algorithm 1 (paper, Appendix A.4).

For one text with real-token states h_1..h_l of a layer and prefix sums S_i = h_1 + ... + h_i,
the paper's selection matrices L1, L2 give

    X^T L1 L1^T X = sum_{i<l} S_i S_i^T          (cov0)
    X^T L1 L2^T X = sum_{i<l} S_i h_{i+1}^T      (cov1)

and with the mean state m = S_l / l and the one-hot label y:  m m^T (meanXX) and m y^T (meanXY).
Only meanXY depends on the labels: several label views of the same texts (one corpus labelled by
rating and by department) are accumulated in one pass, y being the views' one-hots side by side,
and `LayerStatistics.label_views` splits them. Here they are computed for a whole padded batch
with masked cumulative sums and one matrix product per layer. Sums are kept (not averages) so that
shards of a dataset add up exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ntps.core.errors import NtpsInputError

STATISTIC_NAMES = ("mean_xx", "mean_xy", "cov0", "cov1")
# Sums of m m^T and of S_i S_i^T equal their transposes: stored as upper triangles, half the bytes.
SYMMETRIC_NAMES = ("mean_xx", "cov0")
# The fields of LayerStatistics and the names of its stored arrays.
STORED_NAMES = ("mean_xx_upper", "mean_xy", "cov0_upper", "cov1")


def pack_symmetric(matrices: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """(L, d, d) symmetric -> (L, d (d + 1) / 2), each matrix's upper triangle row by row (numpy
    or torch, on the tensor's device)."""
    rows, columns = np.triu_indices(matrices.shape[-1])
    return matrices[:, rows, columns]


def unpack_symmetric(packed: np.ndarray, d: int) -> np.ndarray:
    """(L, d (d + 1) / 2) -> (L, d, d), the inverse of pack_symmetric."""
    rows, columns = np.triu_indices(d)
    matrices = np.empty((packed.shape[0], d, d), dtype=packed.dtype)
    matrices[:, rows, columns] = packed
    matrices[:, columns, rows] = packed
    return matrices


@dataclass
class LayerStatistics:
    """Sums over texts of the four statistics of Algorithm 1, for every layer, in float64.

    The symmetric sums are kept as upper triangles (pack_symmetric), the form they are stored in, so
    that a stored archive (memory-mapped by ntps.io.NpzDataset) is read one layer at a time
    (`summed`, `averaged`) and never unpacked whole: an 8B model's 33 layers of four 4,096^2
    matrices are 17 GB.

    Attributes:
        mean_xx_upper: (L, d (d + 1) / 2) sum over texts of m m^T, upper triangle.
        mean_xy: (L, d, c) sum over texts of m y^T.
        cov0_upper: (L, d (d + 1) / 2) sum over texts of sum_{i<l} S_i S_i^T, upper triangle.
        cov1: (L, d, d) sum over texts of sum_{i<l} S_i h_{i+1}^T.
        n_texts: number of texts summed (the paper's n).
        n_transitions: number of (prefix, next token) pairs summed into cov0 and cov1.
        class_counts: (c,) texts per label id.
    """

    mean_xx_upper: np.ndarray
    mean_xy: np.ndarray
    cov0_upper: np.ndarray
    cov1: np.ndarray
    n_texts: int
    n_transitions: int
    class_counts: np.ndarray

    @classmethod
    def from_matrices(
        cls,
        mean_xx: np.ndarray,
        mean_xy: np.ndarray,
        cov0: np.ndarray,
        cov1: np.ndarray,
        n_texts: int,
        n_transitions: int,
        class_counts: np.ndarray,
    ) -> LayerStatistics:
        """From whole (L, d, d) meanXX and cov0, keeping their upper triangles."""
        return cls(
            mean_xx_upper=pack_symmetric(mean_xx),
            mean_xy=mean_xy,
            cov0_upper=pack_symmetric(cov0),
            cov1=cov1,
            n_texts=n_texts,
            n_transitions=n_transitions,
            class_counts=class_counts,
        )

    @property
    def n_layers(self) -> int:
        return self.mean_xy.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.mean_xy.shape[1]

    @property
    def n_classes(self) -> int:
        return self.mean_xy.shape[2]

    def summed(self, name: str, layer: int) -> np.ndarray:
        """One layer's sum of statistic `name` (STATISTIC_NAMES) as a whole float64 matrix:
        (d, d), or (d, c) for meanXY."""
        if name in SYMMETRIC_NAMES:
            packed = np.asarray(getattr(self, f"{name}_upper")[layer], dtype=np.float64)
            return unpack_symmetric(packed[None], self.hidden_size)[0]
        return np.asarray(getattr(self, name)[layer], dtype=np.float64)

    def averaged(self, layer: int, names: Sequence[str] = STATISTIC_NAMES) -> dict[str, np.ndarray]:
        """The paper's expectations for one layer: each sum divided by the number of texts.

        Returns:
            {"mean_xx": (d, d), "mean_xy": (d, c), "cov0": (d, d), "cov1": (d, d)}, or those of
            `names` only.
        """
        if self.n_texts == 0:
            raise NtpsInputError("no texts were accumulated: the dataset is empty")
        return {name: self.summed(name, layer) / self.n_texts for name in names}

    def label_views(self, n_classes: Sequence[int]) -> list[LayerStatistics]:
        """The statistics of each label view accumulated side by side (StatisticsAccumulator with
        several views): view v keeps its n_classes[v] columns of meanXY and class counts and
        shares meanXX, cov0 and cov1 (the same arrays, not copies)."""
        if sum(n_classes) != self.n_classes:
            raise NtpsInputError(
                f"label views of {list(n_classes)} classes do not add up to the {self.n_classes} accumulated"
            )
        starts = np.cumsum((0, *n_classes))
        return [
            dataclasses.replace(self, mean_xy=self.mean_xy[:, :, start:end], class_counts=self.class_counts[start:end])
            for start, end in zip(starts[:-1], starts[1:], strict=True)
        ]

    def __add__(self, other: LayerStatistics) -> LayerStatistics:
        if self.mean_xy.shape != other.mean_xy.shape:
            raise NtpsInputError(f"cannot add statistics of shapes {self.mean_xy.shape} and {other.mean_xy.shape}")
        return LayerStatistics(
            **{name: getattr(self, name) + getattr(other, name) for name in STORED_NAMES},
            n_texts=self.n_texts + other.n_texts,
            n_transitions=self.n_transitions + other.n_transitions,
            class_counts=self.class_counts + other.class_counts,
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat name -> array mapping, for storage as one archive: meanXY and cov1 whole, meanXX
        and cov0 as "<name>_upper", all float64 sums, so stored shards still add up."""
        return {
            **{name: getattr(self, name) for name in STORED_NAMES},
            "n_texts": np.asarray(self.n_texts),
            "n_transitions": np.asarray(self.n_transitions),
            "class_counts": self.class_counts,
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> LayerStatistics:
        """The inverse of to_arrays, without copying float64 arrays (a memory-mapped archive stays
        mapped); archives written before the symmetric packing (whole meanXX and cov0) load too."""
        stored = {
            name: pack_symmetric(np.asarray(arrays[name.removesuffix("_upper")]))
            if name not in arrays and name.endswith("_upper")
            else arrays[name]
            for name in STORED_NAMES
        }
        return cls(
            **{name: np.asarray(value, dtype=np.float64) for name, value in stored.items()},
            n_texts=int(arrays["n_texts"]),
            n_transitions=int(arrays["n_transitions"]),
            class_counts=np.asarray(arrays["class_counts"], dtype=np.int64),
        )


# Column blocks of the upper-triangle-only Gram update: b blocks compute (b + 1) / 2b of the full
# product's multiply-adds; 4 (5/8 of them) was the fastest of 2, 4, 6 and 8 at d = 576 on this
# machine's MKL, where more, narrower blocks lose to the products' lower efficiency.
GRAM_BLOCKS = 4


def _gram_blocks(d: int) -> list[tuple[int, int]]:
    """(start, end) of the GRAM_BLOCKS column blocks of a d-wide upper-triangle Gram update."""
    edges = sorted({round(block * d / GRAM_BLOCKS) for block in range(GRAM_BLOCKS + 1)})
    return list(zip(edges[:-1], edges[1:]))


# How the per-batch products of cov0 and cov1 are computed; the sums are float64 whichever it is.
# float64: exact to float64 rounding (the pipeline's default). float32: float32 products.
# bfloat16x3: every float64 factor split into three bfloat16 pieces (24 bits, as float32's
# mantissa), products of pieces on bfloat16 matrix units with float32 sums (on a CPU emulated in
# float32, exactly as such units multiply), the pieces' cross terms below 2^-24 left out: as
# accurate as float32 products. That is six products of pieces for cov0, three for cov1 when the
# forward pass hands over bfloat16 states (one piece each), at the bfloat16 rate, which on a Hopper
# GPU is 15 times float64's: 4.2 times the float64 products' operations at 15 times the rate, so
# by arithmetic 3.6 times as fast (benchmarks/gpu_scale_check.sh times both; docs/scaling.md).
PRODUCTS = ("float64", "float32", "bfloat16x3")


def check_products(products: str) -> None:
    """Refuse a way of computing the products that is not one of PRODUCTS, naming them."""
    if products not in PRODUCTS:
        raise NtpsInputError(f"the statistics' products are one of {PRODUCTS}, not {products!r}")


def add_transition_products(
    cov0: torch.Tensor,
    cov1: torch.Tensor,
    prefixes: torch.Tensor,
    next_states: torch.Tensor,
    products: str = "float64",
) -> None:
    """cov0 += P^T P on and above the diagonal only, cov1 += P^T H, in place, for P (n, d) the
    prefix sums S_i and H (n, d) the next states h_{i+1} of n next-token pairs, the products
    computed as `products` (PRODUCTS) says. cov0's entries below the diagonal mean nothing
    afterwards: the symmetric sums are stored as upper triangles (pack_symmetric), so only the
    products on and above the diagonal are computed (and some just below it, in column blocks)."""
    check_products(products)
    # cov0 += gram_left^T gram_right, cov1 += cross_left^T cross_right.
    if products == "bfloat16x3":
        # sum_{i + j <= 2} A_i^T B_j, every term in one product: A's and B's pieces stacked along n.
        prefix_pieces, next_pieces = bfloat16_pieces(prefixes), bfloat16_pieces(next_states)
        terms = [(i, j) for i in range(3) for j in range(3) if i + j <= 2]
        gram_left = torch.cat([prefix_pieces[i] for i, _ in terms])
        gram_right = torch.cat([prefix_pieces[j] for _, j in terms])
        cross_terms = [(i, j) for i, j in terms if j < len(next_pieces)]
        cross_left = torch.cat([prefix_pieces[i] for i, _ in cross_terms])
        cross_right = torch.cat([next_pieces[j] for _, j in cross_terms])
    else:
        dtype = torch.float64 if products == "float64" else torch.float32
        gram_left = gram_right = cross_left = prefixes.to(dtype)
        cross_right = next_states.to(dtype)
    for start, end in _gram_blocks(gram_left.shape[1]):
        _add_product(cov0[start:end, start:], gram_left[:, start:end].T, gram_right[:, start:])
    _add_product(cov1, cross_left.T, cross_right)


def bfloat16_pieces(x: torch.Tensor) -> list[torch.Tensor]:
    """x as bfloat16 pieces x_0 + x_1 + x_2, each the bfloat16 rounding of what the previous ones
    leave (24 bits of x, relative error about 2^-24); a bfloat16 x is its own one piece."""
    if x.dtype == torch.bfloat16:
        return [x]
    rest = x.to(torch.float64)
    pieces = []
    for _ in range(3):
        pieces.append(rest.to(torch.bfloat16))
        rest = rest - pieces[-1]
    return pieces


def _add_product(total: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """total += a @ b with total float64 and a, b float64, float32 or bfloat16 (float32 sums)."""
    if a.dtype == total.dtype:
        total.addmm_(a, b)  # no temporary
    elif a.dtype == torch.bfloat16 and a.is_cuda:
        total += torch.mm(a, b, out_dtype=torch.float32)
    elif a.dtype == torch.bfloat16:
        # What bfloat16 matrix units compute: products of bfloat16 numbers are exact in float32.
        total += a.float() @ b.float()
    else:
        total += a @ b


def transition_product_flops(n_pairs: int, d: int) -> float:
    """The floating-point operations add_transition_products spends on n_pairs pairs of width d:
    cov1's product (2 n d^2) and cov0's column blocks on and above the diagonal."""
    cov0_entries = sum((end - start) * (d - start) for start, end in _gram_blocks(d))
    return 2.0 * n_pairs * (d * d + cov0_entries)


class StatisticsAccumulator:
    """Adds batches of hidden states into float64 sums; memory is O(L d^2), not O(texts)."""

    def __init__(
        self,
        n_layers: int,
        hidden_size: int,
        n_classes: int | Sequence[int],
        device: str | torch.device = "cpu",
        products: str = "float64",
    ):
        """Sums live on `device`, so a GPU forward pass is not slowed by copies to the host.

        n_classes: the classes of the one label view, or of each of several label views of the
        same texts, whose one-hots are accumulated side by side in meanXY (label_views splits them).
        products: how cov0's and cov1's per-batch products are computed (PRODUCTS), summed in
            float64 whichever it is. float64 is exact; float32 and bfloat16x3 (for a GPU's
            bfloat16 matrix units) are accurate to float32, which moves the scores by up to about
            1e-3 (benchmarks/ntps_benchmark.py --measure product-precision).
        """
        check_products(products)
        self._products = products
        self._view_classes = (int(n_classes),) if np.ndim(n_classes) == 0 else tuple(int(c) for c in n_classes)
        if not self._view_classes or min(self._view_classes) < 1:
            raise NtpsInputError(f"every label view needs at least 1 class, got {n_classes}")
        n_classes = sum(self._view_classes)
        shape = (n_layers, hidden_size, hidden_size)
        self._device = torch.device(device)
        self._sums: dict[str, torch.Tensor] | None = {
            "mean_xx": torch.zeros(shape, dtype=torch.float64, device=self._device),
            "mean_xy": torch.zeros((n_layers, hidden_size, n_classes), dtype=torch.float64, device=self._device),
            "cov0": torch.zeros(shape, dtype=torch.float64, device=self._device),
            "cov1": torch.zeros(shape, dtype=torch.float64, device=self._device),
        }
        self._n_layers = n_layers
        self._n_texts = 0
        self._n_transitions = 0
        self._class_counts = torch.zeros(n_classes, dtype=torch.int64)

    def update(
        self,
        hidden_states: Sequence[torch.Tensor],
        attention_mask: torch.Tensor,
        label_ids: torch.Tensor,
    ) -> list[torch.Tensor]:
        """Add one padded batch, and return each layer's (B, d) float64 mean states m, on the
        accumulator's device: the mean-pooled features of these texts, already computed.

        Args:
            hidden_states: L tensors of shape (B, T, d), one per layer (any float dtype, any
                device); padded positions may hold anything, they are masked out.
            attention_mask: (B, T) with 1 for real tokens, 0 for padding (left or right).
            label_ids: (B,) integer labels in [0, c), or (B, V) with one column per label view,
                view v's in [0, c_v).
        """
        if self._sums is None:
            raise NtpsInputError("the statistics were already taken from this accumulator (result()); start a new one")
        if len(hidden_states) != self._n_layers:
            raise NtpsInputError(f"expected hidden states for {self._n_layers} layers, got {len(hidden_states)}")
        mask = attention_mask.to(device=self._device, dtype=torch.bool)
        lengths = mask.sum(dim=1)
        if bool((lengths == 0).any()):
            raise NtpsInputError("a text in the batch has no real tokens (empty after tokenization)")
        label_ids = label_ids.to(device=self._device, dtype=torch.int64).reshape(len(label_ids), -1)
        if label_ids.shape[1] != len(self._view_classes):
            raise NtpsInputError(f"expected labels of {len(self._view_classes)} label view(s), got {label_ids.shape[1]}")
        view_classes = torch.as_tensor(self._view_classes, device=self._device)
        if bool((label_ids < 0).any()) or bool((label_ids >= view_classes).any()):
            if len(self._view_classes) == 1:
                bounds, got = self._view_classes[0], label_ids.ravel().tolist()
            else:
                bounds, got = list(self._view_classes), label_ids.tolist()
            raise NtpsInputError(f"label ids must lie in [0, {bounds}), got {got}")
        # The views' one-hots side by side, view v in its own block of c_v columns.
        one_hot = torch.cat(
            [torch.nn.functional.one_hot(label_ids[:, view], classes) for view, classes in enumerate(self._view_classes)],
            dim=1,
        ).to(torch.float64)
        # A pair (S_i, h_{i+1}) needs both tokens real, whichever side the padding is on.
        has_next = mask[:, :-1] & mask[:, 1:]
        last_index = (torch.arange(mask.shape[1], device=self._device) * mask).argmax(dim=1)
        batch_index = torch.arange(mask.shape[0], device=self._device)
        layer_means = []
        real = mask.unsqueeze(-1)
        for layer, states in enumerate(hidden_states):
            # Padded positions may hold anything, NaN included (a fully masked attention row):
            # selected away, not multiplied by 0, which would keep a NaN. In the model's dtype; the
            # prefix sums cast to float64 as they sum, which is exact.
            states = torch.where(real, states.detach().to(device=self._device), 0.0)
            prefix_sums = states.cumsum(dim=1, dtype=torch.float64)
            mean_states = prefix_sums[batch_index, last_index] / lengths.unsqueeze(-1)
            # A NaN or infinite real state makes its text's whole sum, and so its mean, non-finite:
            # checking the (B, d) means checks every state.
            if not bool(torch.isfinite(mean_states).all()):
                raise NtpsInputError(
                    f"hidden states of layer {layer} contain NaN or infinite values; "
                    "the forward pass is numerically broken (try float32 instead of float16)"
                )
            layer_means.append(mean_states)
            self._sums["mean_xx"][layer].addmm_(mean_states.T, mean_states)
            self._sums["mean_xy"][layer].addmm_(mean_states.T, one_hot)
            add_transition_products(
                self._sums["cov0"][layer],
                self._sums["cov1"][layer],
                prefix_sums[:, :-1][has_next],
                states[:, 1:][has_next],
                self._products,
            )
        self._n_texts += int(mask.shape[0])
        self._n_transitions += int(has_next.sum())
        self._class_counts += one_hot.sum(dim=0).to(torch.int64).cpu()
        return layer_means

    def result(self) -> LayerStatistics:
        """The sums, handed over: meanXX and cov0 packed where they live (a GPU), so the host never
        holds them whole, and meanXY and cov1 as the accumulator's own arrays on a CPU, not copies
        (cov1 is 4.4 GB for an 8B model's 33 hidden states). The accumulator is spent: `update`
        refuses to add to sums it no longer owns."""
        if self._sums is None:
            raise NtpsInputError("the statistics were already taken from this accumulator")
        sums, self._sums = self._sums, None

        def on_host(tensor: torch.Tensor) -> np.ndarray:
            # One copy from a GPU, none on the CPU (the spent accumulator keeps no reference).
            return tensor.cpu().numpy()

        # Popped one at a time, so that each whole d x d sum is freed once it is packed.
        return LayerStatistics(
            mean_xx_upper=on_host(pack_symmetric(sums.pop("mean_xx"))),
            mean_xy=on_host(sums.pop("mean_xy")),
            cov0_upper=on_host(pack_symmetric(sums.pop("cov0"))),
            cov1=on_host(sums.pop("cov1")),
            n_texts=self._n_texts,
            n_transitions=self._n_transitions,
            class_counts=self._class_counts.numpy().copy(),
        )
