"""ntps.core.released_code: the released procedure against a literal transcription of it, and its order."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from ntps.core import released_code
from ntps.core.ntps import score_tables
from ntps.core.released_code import RELEASED_FRACTIONS, released_alignment_scores, whitened_eigenvectors
from ntps.core.subspaces import layer_subspaces
from tests.core.released_code_reference import released_dense_scores
from tests.core.synthetic import (
    planted_pencils,
    statistics_of,
    synthetic_moments,
)


@pytest.mark.parametrize("n_texts", [300, 25])  # 25 < d: meanXX is singular and whitening drops directions
def test_released_code_equals_a_literal_transcription_of_it(n_texts):
    rng = np.random.default_rng(11)
    moments = synthetic_moments(rng, n_texts, d=40, c=4)
    released = released_alignment_scores(**moments)
    with threadpool_limits(limits=1):  # the same float32 sums as the pinned production code
        reference = released_dense_scores(moments["mean_xy"], moments["mean_xx"], moments["cov1"], moments["cov0"])
    assert len(reference) == len(RELEASED_FRACTIONS) == 19
    np.testing.assert_array_equal(released.u_columns, [columns for columns, _, _ in reference])
    np.testing.assert_array_equal(released.v_columns, [columns for _, columns, _ in reference])
    np.testing.assert_allclose(released.scores, [score for _, _, score in reference], atol=1e-6)
    rank_u = whitened_eigenvectors(moments["mean_xy"] @ moments["mean_xy"].T, moments["mean_xx"]).rank
    assert (rank_u < 40) == (n_texts < 40)
    assert released.u_columns[-1] == int(RELEASED_FRACTIONS[-1] * rank_u)


def test_released_scores_do_not_depend_on_blas_threads_or_cores(monkeypatch):
    # OpenBLAS orders its float32 sums by how it splits work between threads: on BLAS's own
    # threads the scores move with their number; pinned to one per call they do not, whatever the
    # process's setting and however many calls run side by side.
    moments = synthetic_moments(np.random.default_rng(11), 900, d=300, c=4)
    with threadpool_limits(limits=1):
        one_thread = released_alignment_scores(**moments, blas_threads=None).scores
    with threadpool_limits(limits=2):
        two_threads = released_alignment_scores(**moments, blas_threads=None).scores
        pinned = []
        for cores in (1, 2, 5):
            monkeypatch.setattr(released_code, "_available_cores", lambda cores=cores: cores)
            pinned.append(released_alignment_scores(**moments).scores)
    assert np.nanmax(np.abs(two_threads - one_thread)) > 1e-4  # the rounding that pinning removes is there
    for scores in pinned:
        np.testing.assert_array_equal(scores, one_thread)


def test_released_code_scores_the_smallest_eigenvalue_directions_and_paper_the_largest():
    moments = planted_pencils()
    statistics = statistics_of(moments)
    ntps_table, _ = score_tables(statistics, layer_subspaces(statistics, ridge=0.0), 0.0, [0.1, 0.2, 0.3])
    released = ntps_table[ntps_table["variant"] == "released_code"].set_index("k_fraction")["ntps"]
    paper = ntps_table[ntps_table["variant"] == "paper"].set_index("k")["ntps"]
    top_first = released_alignment_scores(**moments, top_first=True)
    for index, fraction in enumerate(RELEASED_FRACTIONS[1:6], start=1):  # 1 to 3 of the 12 columns
        k = int(fraction * 12)
        # eigh's ascending order: U's e12, e11, e10 against V's e4, e5, e6: nothing in common.
        assert released[fraction] == pytest.approx(0.0, abs=1e-6)
        # Top first, as the paper writes it: e1..ek both.
        assert paper[k] == pytest.approx(1.0, abs=1e-9)
        assert top_first.scores[index] == pytest.approx(1.0, abs=1e-5)
