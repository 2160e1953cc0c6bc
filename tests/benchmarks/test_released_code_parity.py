"""benchmarks/released_code_parity.py: its two tables as records, from a catalog's latest statistics and
NTPS tables, and its refusal to pair statistics and a table of different runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kedro.io import DataCatalog

RIDGE = 1e-6
FRACTIONS = [0.05, 0.5, 0.95]
PAIR = "tiny_model.tiny_dataset"
# At d = 12 the released procedure's f = 0.05 takes int(0.05 x 12) = 0 columns: its score is NaN.
pytestmark = pytest.mark.filterwarnings("ignore:All-NaN slice encountered:RuntimeWarning")


@pytest.fixture
def parity(benchmark_script):
    return benchmark_script("released_code_parity")


@pytest.fixture
def statistics(parity):
    from synthetic_layers import synthetic_statistics

    return synthetic_statistics(12, n_classes=3, seed=0)


def ntps_table(statistics, released_code: bool = False):
    """The NTPS table the scores stage writes for these statistics (by default without the released
    procedure, as the default run does)."""
    from ntps.core.ntps import score_tables
    from ntps.core.subspaces import layer_subspaces

    subspaces = layer_subspaces(statistics, ridge=RIDGE)
    table, _ = score_tables(statistics, subspaces, RIDGE, FRACTIONS, released_code=released_code)
    return table


def catalog_config(folder) -> dict:
    """The project catalog's two entries the script reads, under `folder`."""
    return {
        "{model}.{dataset}.layer_statistics": {
            "type": "ntps.io.NpzDataset",
            "filepath": str(folder / "{model}/{dataset}/layer_statistics.npz"),
            "versioned": True,
        },
        "{model}.{dataset}.ntps_table": {
            "type": "pandas.ParquetDataset",
            "filepath": str(folder / "{model}/{dataset}/ntps_table.parquet"),
            "versioned": True,
        },
    }


def save(folder, version: str, name: str, data) -> None:
    DataCatalog.from_config(catalog_config(folder), save_version=version).save(f"{PAIR}.{name}", data)


def test_both_tables_are_records_with_named_fields(parity, statistics):
    table = ntps_table(statistics)
    tables = parity.parity_tables([("m", "a", statistics, table)], layers=[0, 5], fractions=FRACTIONS, seeds=1)
    rows = tables["released_vs_paper"]
    # Layer 5 is beyond the statistics' one layer: one row per score of layer 0.
    assert [(row["model"], row["dataset"], row["layer"], row["score"]) for row in rows] == [
        ("m", "a", 0, "paper"),
        ("m", "a", 0, "released_code"),
        ("m", "a", 0, "released_top_first"),
    ]
    assert [row["label"] for row in rows] == list(parity.SCORES.values())
    assert all(list(row["ntps"]) == ["0.05", "0.50", "0.95"] for row in rows)
    # paper at k = round(f d), d = 12; released_code, computed from the statistics, as the scores stage
    # stores it with ntps_scores.released_code on, at the same fractions.
    paper = table[table["variant"] == "paper"].set_index("k")["ntps"]
    assert rows[0]["ntps"] == {"0.05": paper[1], "0.50": paper[6], "0.95": paper[11]}
    scored = ntps_table(statistics, released_code=True)
    released = scored[scored["variant"] == "released_code"].set_index("k_fraction")["ntps"]
    assert rows[1]["ntps"]["0.50"] == released.iloc[9] and rows[1]["ntps"]["0.95"] == released.iloc[18]
    assert np.isnan(rows[1]["ntps"]["0.05"]) and np.isnan(released.iloc[0])
    spread = tables["float32_spread"]
    assert [row["k_fraction"] for row in spread] == [round(0.05 * i, 2) for i in range(1, 20)]
    columns = {"k_fraction", "ascending_blas", "ascending_nudge", "top_first_blas", "top_first_nudge"}
    assert all(set(row) == columns for row in spread)
    assert all(row[name] >= 0 for row in spread for name in columns)
    # The markdown the script prints comes from the same records.
    printed = parity.markdown(tables, FRACTIONS)
    assert f"| m / a | 0 | released_code | {rows[1]['ntps']['0.05']:.3f} |" in printed
    assert "| 0.95 | " in printed


def test_the_record_names_the_versions_it_read(parity, statistics, tmp_path):
    table = ntps_table(statistics)
    save(tmp_path, "2026-01-01T00.00.00.000Z", "layer_statistics", statistics.to_arrays())
    save(tmp_path, "2026-01-01T00.00.00.000Z", "ntps_table", table)
    # A later forward pass of as many texts, not yet scored: the table still pairs with it.
    save(tmp_path, "2026-01-02T00.00.00.000Z", "layer_statistics", statistics.to_arrays())
    catalog = DataCatalog.from_config(catalog_config(tmp_path))
    record = parity.parity_record(catalog, ["tiny_model"], ["tiny_dataset"], [0], FRACTIONS, seeds=1)
    assert record["run"]["pairs"] == [
        {
            "model": "tiny_model",
            "dataset": "tiny_dataset",
            "statistics_version": "2026-01-02T00.00.00.000Z",
            "ntps_table_version": "2026-01-01T00.00.00.000Z",
            "n_texts": 1,
        }
    ]
    assert (record["run"]["layers"], record["run"]["fractions"], record["run"]["seeds"]) == ([0], FRACTIONS, 1)
    assert len(record["tables"]["released_vs_paper"]) == 3 and len(record["tables"]["float32_spread"]) == 19
    # written as strict JSON (f = 0.05's NaN as null), beside the command and the machine
    output = tmp_path / "results" / "parity.json"
    parity.write_results(output, parity.results_record("cpu") | record)
    written = json.loads(output.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the file"))
    assert set(written) == {"command", "machine", "run", "tables"}
    assert {"cpu_count", "torch", "numpy", "platform", "device"} <= set(written["machine"])
    assert written["tables"]["released_vs_paper"][0]["ntps"] == record["tables"]["released_vs_paper"][0]["ntps"]
    assert written["tables"]["released_vs_paper"][1]["ntps"]["0.05"] is None


def test_statistics_of_another_number_of_texts_than_the_tables_are_refused(parity, statistics, tmp_path):
    save(tmp_path, "2026-01-01T00.00.00.000Z", "layer_statistics", statistics.to_arrays())
    save(tmp_path, "2026-01-01T00.00.00.000Z", "ntps_table", ntps_table(statistics))
    # A later run summed twice the texts and has not scored them.
    save(tmp_path, "2026-01-02T00.00.00.000Z", "layer_statistics", (statistics + statistics).to_arrays())
    catalog = DataCatalog.from_config(catalog_config(tmp_path))
    with pytest.raises(SystemExit, match=r"sum 2 training texts.*statistics of 1 .*different runs"):
        parity.read_pair(catalog, "tiny_model", "tiny_dataset")


def test_a_table_older_than_every_stored_statistics_is_refused(parity, statistics, tmp_path):
    save(tmp_path, "2026-01-01T00.00.00.000Z", "ntps_table", ntps_table(statistics))
    save(tmp_path, "2026-01-02T00.00.00.000Z", "layer_statistics", statistics.to_arrays())
    catalog = DataCatalog.from_config(catalog_config(tmp_path))
    with pytest.raises(SystemExit, match="older than every stored version of its statistics"):
        parity.read_pair(catalog, "tiny_model", "tiny_dataset")
    with pytest.raises(SystemExit, match="no statistics and no NTPS table stored"):
        parity.read_pair(catalog, "tiny_model", "other_dataset")


def test_nudged_statistics_move_by_at_most_one_ulp(parity):
    moments = {"cov0": np.linspace(0.5, 2.0, 12, dtype=np.float64).reshape(3, 4)}
    moved = parity.nudged(moments, seed=0)["cov0"]
    original = moments["cov0"].astype(np.float32)
    assert moved.dtype == np.float32
    assert np.all(np.abs(moved - original) <= np.spacing(original))
