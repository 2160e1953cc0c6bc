"""ntps.core.linalg: the torch.linalg path (run here on the CPU) gives the scipy path's subspaces
and scores, and the device setting is checked."""

from __future__ import annotations

import logging
from unittest import mock

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse.linalg
import torch

from ntps.core import linalg
from ntps.core.errors import NtpsInputError
from ntps.core.linalg import (
    NestedBasis,
    OrthonormalComplement,
    cholesky_lower,
    extreme_eigenvalues,
    generalized_eigh,
    gram_cholesky_upper,
    linalg_device,
    nested_prefix_sums,
    symmetric_eigh,
)
from ntps.core.ntps import ntps_paper_and_signal_all_k, score_tables
from ntps.core.subspaces import LayerSubspaces, layer_subspaces
from tests.core.paper_reference import algorithm1_ntps
from tests.core.synthetic import accumulate, random_texts

TORCH_CPU = torch.device("cpu")


def same_up_to_column_signs(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    signs = np.sign((a * b).sum(axis=0))
    np.testing.assert_allclose(a * signs, b, atol=atol, rtol=0)


def test_pencil_matches_scipy():
    rng = np.random.default_rng(20)
    d = 30
    root_a, root_b = rng.normal(size=(d, d)), rng.normal(size=(d, 2 * d))
    a, b = root_a @ root_a.T, root_b @ root_b.T / d
    values, vectors = generalized_eigh(a, b)
    torch_values, torch_vectors = generalized_eigh(a, b, TORCH_CPU)
    np.testing.assert_allclose(torch_values, values, rtol=1e-9)
    same_up_to_column_signs(torch_vectors, vectors, atol=1e-8 * np.abs(vectors).max())
    np.testing.assert_allclose(torch_vectors.T @ b @ torch_vectors, np.eye(d), atol=1e-9)


def stored_and_solved_bases(rng: np.random.Generator, d: int) -> dict[str, np.ndarray]:
    """A V as the scores stage loads it (the float32 orthonormal factor the eigen stage stores), one
    further from orthonormal than float32 rounding, and V as the solver returns it (B-orthonormal,
    far from orthogonal), square and tall."""
    solved = rng.normal(size=(d, d)) @ np.diag(np.logspace(0, 3, d))
    orthonormal = np.linalg.qr(solved)[0]
    stored = orthonormal.astype(np.float32).astype(np.float64)
    nearly = orthonormal + 1e-5 * rng.normal(size=(d, d))
    bases = {"stored": stored, "nearly_orthonormal": nearly, "solved": solved}
    return bases | {f"{name}_tall": v[:, : d // 3] for name, v in bases.items()}


FACTORIZATION = {"stored": "none", "nearly_orthonormal": "cholesky_qr", "solved": "householder_qr"}


@pytest.mark.parametrize("device", [None, TORCH_CPU])
def test_nested_basis_is_orthonormal_with_v_nested_spans_by_either_factorization(device):
    rng = np.random.default_rng(22)
    d = 40
    c = rng.normal(size=(d, 5))
    for name, v in stored_and_solved_bases(rng, d).items():
        basis = NestedBasis(v, device)
        # The stored basis is orthonormal to float32 rounding, so it is used as it is; one off by
        # 1e-5 gets Cholesky QR, the solver's V Householder QR.
        assert basis.factorization == FACTORIZATION[name.removesuffix("_tall")]
        q = basis.q
        exact = basis.factorization != "none"
        np.testing.assert_allclose(q.T @ q, np.eye(v.shape[1]), atol=1e-13 if exact else linalg.AS_ORTHONORMAL)
        # Q^T V upper triangular: q_1..q_j span v_1..v_j for every j.
        in_q = q.T @ v
        assert np.abs(np.tril(in_q, -1)).max() <= (1e-12 if exact else 1e-6) * np.abs(in_q).max()
        # The same Q as Householder QR's, column signs aside, and C is left as it was.
        before = c.copy()
        product = basis.transpose_times(c)
        np.testing.assert_array_equal(c, before)
        same_up_to_column_signs(product.T, (np.linalg.qr(v)[0].T @ c).T, atol=1e-12 if exact else 1e-6)
        same_up_to_column_signs(NestedBasis(v).q, q, atol=1e-12)  # scipy and torch agree


def test_orthogonality_loss_estimates_the_stored_bases_from_below_within_a_fifth():
    rng = np.random.default_rng(27)
    for d in (300, 700):
        stored = np.linalg.qr(rng.normal(size=(d, d)))[0].astype(np.float32).astype(np.float64)
        exact = np.abs(scipy.linalg.eigvalsh(stored.T @ stored - np.eye(d))).max()
        assert 0.8 * exact <= linalg.orthogonality_loss(stored) <= exact * (1 + 1e-6)
        assert exact < linalg.AS_ORTHONORMAL / 5
    # A V off in one direction only (one column 1e-5 longer) is found too.
    spiked = np.eye(50)
    spiked[:, 17] *= 1 + 1e-5
    assert linalg.orthogonality_loss(spiked) == pytest.approx(2e-5, rel=1e-3)


def test_sweeps_on_the_stored_basis_as_it_is_stay_within_its_orthogonality_loss_of_exact_projections():
    # The scores' numerators x^T x against the exact x^T (V_k^T V_k)^-1 x, denominators alike:
    # every score within twice ||V^T V - I||_2 / (1 - that), relative, in [0, 1] and 1 at k = d to rounding.
    rng = np.random.default_rng(28)
    d, rank = 120, 3
    u = rng.normal(size=(d, d)) @ np.diag(np.logspace(0, -3, d))
    stored = np.linalg.qr(rng.normal(size=(d, d)))[0]
    stored = (stored + 2e-7 * rng.normal(size=(d, d)) / np.sqrt(d)).astype(np.float64)
    loss = np.abs(scipy.linalg.eigvalsh(stored.T @ stored - np.eye(d))).max()
    assert 1e-7 < loss <= linalg.AS_ORTHONORMAL and NestedBasis(stored).factorization == "none"
    paper, signal = ntps_paper_and_signal_all_k(u, stored, rank)
    exact_paper = [algorithm1_ntps(u, stored, k) for k in range(1, d + 1)]
    exact_signal = [
        np.sum((stored[:, :k] @ np.linalg.pinv(stored[:, :k]) @ u[:, :rank]) ** 2) / np.sum(u[:, :rank] ** 2)
        for k in range(1, d + 1)
    ]
    bound = 2 * loss / (1 - loss)
    np.testing.assert_allclose(paper, exact_paper, rtol=bound, atol=0)
    np.testing.assert_allclose(signal, exact_signal, rtol=bound, atol=0)
    for scores in (paper, signal):
        assert scores.min() >= 0 and scores.max() <= 1 + 1e-14 and scores[-1] == pytest.approx(1, abs=1e-14)


@pytest.mark.parametrize("device", [None, TORCH_CPU])
def test_nested_basis_refuses_v_with_nan_or_more_columns_than_rows(device):
    v = np.eye(4)
    v[2, 1] = np.nan
    with pytest.raises(NtpsInputError, match="NaN"):
        NestedBasis(v, device)
    with pytest.raises(NtpsInputError, match=r"k <= d"):
        NestedBasis(np.ones((3, 4)), device)


def _formed_complement(w: np.ndarray) -> np.ndarray:
    """The literal P: the last d - r columns of the Q that W's complete Householder QR forms."""
    return np.linalg.qr(w, mode="complete")[0][:, w.shape[1] :]


@pytest.mark.parametrize(
    "w",
    [
        np.linalg.qr(np.random.default_rng(23).normal(size=(9, 3)))[0],
        np.linalg.qr(np.random.default_rng(25).normal(size=(9, 1)))[0],
        # columns already reduced: LAPACK leaves their reflectors as the identity
        np.eye(9)[:, [0, 1]],
        np.eye(9)[:, [4, 0]],
        np.zeros((9, 0)),
    ],
    ids=["r=3", "r=1", "reduced", "permuted", "r=0"],
)
def test_orthonormal_complement_acts_as_the_formed_complement(w):
    rng = np.random.default_rng(26)
    root = rng.normal(size=(9, 9))
    a = root @ root.T
    e = rng.normal(size=(9 - w.shape[1], 4))
    formed = _formed_complement(w)
    complement = OrthonormalComplement(w)
    # The same P as the formed one (the columns of Q it shares), not merely another basis of span(W)'s complement
    np.testing.assert_allclose(complement.times(np.eye(9 - w.shape[1])), formed, atol=1e-14)
    np.testing.assert_allclose(complement.congruence(a), formed.T @ a @ formed, atol=1e-12)
    np.testing.assert_allclose(complement.times(e), formed @ e, atol=1e-14)
    completed = np.concatenate([w, complement.times(np.eye(9 - w.shape[1]))], axis=1)
    np.testing.assert_allclose(completed.T @ completed, np.eye(9), atol=1e-14)


def test_orthonormal_complement_refuses_more_columns_than_rows():
    with pytest.raises(NtpsInputError, match="r <= d"):
        OrthonormalComplement(np.ones((3, 4)))


@pytest.mark.parametrize("device", [None, TORCH_CPU])
def test_cholesky_factors_equal_scipys_and_leave_their_input_alone(device):
    rng = np.random.default_rng(26)
    w = rng.normal(size=(12, 7))
    n = w @ w.T + np.eye(12)
    before = n.copy()
    np.testing.assert_allclose(cholesky_lower(n, device), scipy.linalg.cholesky(n, lower=True), rtol=0, atol=1e-13)
    # The ridge's shift on the diagonal; only the lower triangle is read.
    shifted = scipy.linalg.cholesky(n + 0.5 * np.eye(12), lower=True)
    np.testing.assert_allclose(cholesky_lower(np.tril(n), device, shift=0.5), shifted, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(n, before)
    np.testing.assert_allclose(gram_cholesky_upper(w, device), scipy.linalg.cholesky(w.T @ w), rtol=0, atol=1e-13)
    with pytest.raises(np.linalg.LinAlgError):
        cholesky_lower(w @ w.T - np.eye(12), device)  # indefinite
    with pytest.raises(np.linalg.LinAlgError):
        gram_cholesky_upper(np.column_stack([w[:, :2], np.zeros(12)]), device)


def test_cholesky_lower_refuses_nan():
    n = np.eye(3)
    n[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cholesky_lower(n)


@pytest.mark.parametrize("device", [None, TORCH_CPU])
def test_symmetric_eigh_is_ascending_and_orthonormal(device):
    root = np.random.default_rng(24).normal(size=(6, 6))
    a = root + root.T
    values, vectors = symmetric_eigh(a, device)
    assert np.all(np.diff(values) > 0)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(6), atol=1e-13)
    np.testing.assert_allclose(a @ vectors, vectors * values, atol=1e-12)


@pytest.mark.parametrize("k", [1, 9, linalg.PREFIX_BLOCK, 2 * linalg.PREFIX_BLOCK + 3])
def test_nested_prefix_sums_equal_every_leading_blocks_sum(k):
    g = np.random.default_rng(23).random((k, k))
    np.testing.assert_allclose(nested_prefix_sums(g), [g[:j, :j].sum() for j in range(1, k + 1)], rtol=1e-13)


@pytest.mark.parametrize("d", [1, 2, 3, 8, 300])
def test_extreme_eigenvalues_from_the_cholesky_factor_equal_every_eigenvalues_ends(d):
    # A meanXX-like spectrum: eigenvalues over eight decades, the top two nearly equal.
    rng = np.random.default_rng(d)
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    spectrum = np.sort(np.logspace(-6, 2, d))
    if d > 1:
        spectrum[-2] = spectrum[-1] * (1 - 1e-7)
    n = (rotation * spectrum) @ rotation.T
    lower = scipy.linalg.cholesky(n, lower=True)
    every = scipy.linalg.eigvalsh(n)
    for device in (None, TORCH_CPU):
        smallest, largest = extreme_eigenvalues(lower, device)
        assert smallest == pytest.approx(every[0], rel=1e-9) and largest == pytest.approx(every[-1], rel=1e-9)
    # A seeded start: the same array gives the same digits (ARPACK's own start is random).
    assert extreme_eigenvalues(lower) == extreme_eigenvalues(lower)


def test_extreme_eigenvalues_fall_back_to_every_eigenvalue_when_lanczos_does_not_converge(monkeypatch, caplog):
    def no_convergence(*args, **kwargs):
        raise scipy.sparse.linalg.ArpackNoConvergence("no convergence", np.zeros(0), np.zeros((0, 0)))

    monkeypatch.setattr(linalg.scipy.sparse.linalg, "eigsh", no_convergence)
    n = np.diag(np.arange(1.0, 11.0))
    with caplog.at_level(logging.INFO, logger=linalg.__name__):
        assert extreme_eigenvalues(np.sqrt(n)) == pytest.approx((1.0, 10.0), rel=1e-12)
    assert "did not converge" in caplog.text


def test_extreme_eigenvalues_of_a_spectrum_dense_at_its_end_stop_lanczos_early(monkeypatch):
    # meanXX of as many texts as dimensions: its smallest eigenvalues crowd a Marchenko-Pastur edge,
    # where Lanczos on N^-1 takes thousands of solves to separate the smallest (13,541 at d = 2,048).
    d = 600
    states = np.random.default_rng(5).normal(size=(d, d))
    n = states @ states.T / d + np.eye(d)
    lower = scipy.linalg.cholesky(n, lower=True)
    solves = []
    counted = linalg.solve_lower

    def counting_solve_lower(*args, **kwargs):
        solves.append(1)
        return counted(*args, **kwargs)

    monkeypatch.setattr(linalg, "solve_lower", counting_solve_lower)
    every = scipy.linalg.eigvalsh(n)
    assert extreme_eigenvalues(lower) == pytest.approx((every[0], every[-1]), rel=1e-9)
    # One solve per product with N^-1: the first 20 Lanczos vectors and 19 per restart at most.
    assert len(solves) <= 20 + 19 * linalg.LANCZOS_RESTARTS


def test_torch_path_gives_the_scipy_subspaces_and_every_score():
    rng = np.random.default_rng(21)
    statistics = accumulate(*random_texts(rng, n_texts=60, max_length=8))
    scipy_subspaces = layer_subspaces(statistics, ridge=1e-6)
    torch_subspaces = layer_subspaces(statistics, ridge=1e-6, device=TORCH_CPU)
    for name in ("perception_values", "autoregressive_values"):
        values = getattr(scipy_subspaces, name)
        np.testing.assert_allclose(getattr(torch_subspaces, name), values, atol=1e-10 * np.abs(values).max())
    np.testing.assert_array_equal(torch_subspaces.signal_ranks, scipy_subspaces.signal_ranks)
    for name in ("autoregressive_vectors", "perception_vectors"):
        # Every column, U's beyond the signal rank included: both paths take the same basis of the
        # zero eigenspace (perception_subspace).
        for scipy_layer, torch_layer in zip(getattr(scipy_subspaces, name), getattr(torch_subspaces, name)):
            same_up_to_column_signs(torch_layer, scipy_layer, atol=1e-8 * np.abs(scipy_layer).max())

    # The same subspaces scored on either path: every variant and every loss to 1e-8.
    tables = [
        score_tables(statistics, scipy_subspaces, 1e-6, [0.5], released_code=False, device=device)
        for device in (None, TORCH_CPU)
    ]
    (scipy_scores, scipy_losses), (torch_scores, torch_losses) = tables
    np.testing.assert_allclose(torch_scores["ntps"], scipy_scores["ntps"], atol=1e-8)
    for column in ("excess_loss", "label_variance_kept", "theorem2_lower", "theorem2_upper", "n_eigenvalue_min"):
        scale = max(np.abs(scipy_losses[column]).max(), 1e-300)
        np.testing.assert_allclose(torch_losses[column], scipy_losses[column], atol=1e-8 * scale)
    # Subspaces from the torch path: every score agrees, `paper` beyond r included.
    torch_path, _ = score_tables(statistics, torch_subspaces, 1e-6, [0.5], released_code=False, device=TORCH_CPU)
    np.testing.assert_allclose(torch_path["ntps"], scipy_scores["ntps"], atol=1e-8)
    # The stored form, V's orthonormal factor computed on the torch path: the same basis, and the
    # same scores as scipy's stored form to float32's rounding.
    with mock.patch("torch.linalg.qr", wraps=torch.linalg.qr) as torch_qr:
        stored = [scipy_subspaces.to_arrays(), torch_subspaces.to_arrays(TORCH_CPU)]
    assert torch_qr.call_count == statistics.n_layers  # on the device, not on the host
    for scipy_layer, torch_layer in zip(stored[0]["autoregressive_basis"], stored[1]["autoregressive_basis"]):
        same_up_to_column_signs(torch_layer.astype(np.float64), scipy_layer.astype(np.float64), atol=1e-5)
    stored_scores = [
        score_tables(statistics, LayerSubspaces.from_arrays(arrays), 1e-6, [0.5], released_code=False, device=device)[0]
        for arrays, device in zip(stored, (None, TORCH_CPU))
    ]
    np.testing.assert_allclose(stored_scores[1]["ntps"], stored_scores[0]["ntps"], atol=1e-6)


def test_device_settings():
    assert linalg_device("cpu") is None
    assert linalg_device("auto") == (torch.device("cuda") if torch.cuda.is_available() else None)
    with pytest.raises(NtpsInputError, match="auto, cpu or cuda"):
        linalg_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(NtpsInputError, match="no CUDA GPU is visible"):
            linalg_device("cuda")
