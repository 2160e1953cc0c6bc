"""Conventions the project keeps by test rather than by memory: the catalog's naming and layer rule
(conf/README.md), no parameter key that nothing reads, no account of the project's own development in
the text users read, and no timings in the source."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPOSITORY

SOURCE = REPOSITORY / "src" / "ntps"
CONF = REPOSITORY / "conf"

# The layer of each kind of per-pair entry (conf/README.md); any other per-pair entry is one of the
# pair's tables, in 07_model_output.
LAYER_OF_KIND = {
    "labeled_texts": "01_raw",
    "tokenized_texts": "02_intermediate",
    "layer_statistics": "04_feature",
    "pooled_features": "04_feature",
    "eigen_subspaces": "05_model_input",
    "language_model_card": "06_models",
    "adapted_language_model_card": "06_models",
    "lora_adapter": "06_models",
}
NAMESPACES = ("{dataset}", "{model}", "{model}.{dataset}", "{model}.{dataset}.after_lora")
FIGURE_SUFFIXES = ("_figure", "_heatmaps", "_comparison", "_curves")
MLFLOW_ARTIFACT = "ntps.io.VersionedMlflowArtifactDataset"
MLFLOW_METRICS = "kedro_mlflow.io.metrics.MlflowMetricsHistoryDataset"

# Text that narrates the project's own development rather than saying what the product does.
HISTORY = re.compile(
    r"\b(this|previous|earlier|last|next) session|\buntil now\b|\bused to (be|take|give|run)\b"
    r"|\bfresh clone of\b|\bbefore this change\b|\bthe old (code|sweeps|version)\b|\bnot measured yet\b"
    r"|\bthe issue\b|\bissue #?\d+|\bwas changed\b|\bwe (changed|fixed|added|removed)\b",
    re.IGNORECASE,
)
COMMIT_HASH = re.compile(r"(?<![\w/.#:-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![\w/-])")
TIMING = re.compile(
    r"\b\d+(\.\d+)? ?(ms|s|seconds?|min|minutes?|h|hours?)\b(?! ?[=(])|\bGFLOP/s\b|\b\d+(\.\d+)?x (faster|slower)\b"
)


def catalog_problems(catalog: dict) -> list[str]:
    """Every way an entry breaks conf/README.md's naming and layer rule."""
    problems = []
    for name, entry in catalog.items():
        if name.startswith("_"):
            continue  # a YAML anchor, which Kedro does not read as a dataset
        kind = entry["type"]
        if kind == MLFLOW_METRICS:
            if not name.endswith("_metrics"):
                problems.append(f"{name}: MLflow metrics entries are named <what>_metrics")
            continue
        filepath = entry.get("filepath") or entry.get("dataset", {}).get("filepath", "")
        if not entry.get("versioned"):
            problems.append(f"{name}: not versioned")
        namespace, _, stem = name.rpartition(".")
        if namespace:
            if namespace not in NAMESPACES:
                problems.append(f"{name}: namespace {namespace!r} is none of {NAMESPACES}")
                continue
            shard = re.fullmatch(r"(\w+)_shard_\{shard\}", stem)
            kind_name = shard[1] if shard else stem
            layer = LAYER_OF_KIND.get(kind_name, "07_model_output")
            folders = "/".join(namespace.split("."))
            file_name = f"shards/{kind_name}_{{shard}}" if shard else kind_name
            expected = f"data/{layer}/{folders}/{file_name}"
            if Path(filepath).with_suffix("").as_posix() != expected:
                problems.append(f"{name}: file {filepath}, expected {expected}.<extension>")
        else:
            if kind != MLFLOW_ARTIFACT or entry.get("artifact_path") != "reports":
                problems.append(f"{name}: an entry across pairs is a {MLFLOW_ARTIFACT} under reports/")
            file_stem = Path(filepath).stem
            stems = {name} | {name.removesuffix("_figure")} if name.endswith("_figure") else {name}
            is_figure = filepath.endswith(".png")
            if is_figure and not name.endswith(FIGURE_SUFFIXES):
                problems.append(f"{name}: a figure's entry ends in one of {FIGURE_SUFFIXES}")
            if not filepath.startswith("data/08_reporting/") or file_stem not in stems:
                problems.append(f"{name}: file {filepath}, expected data/08_reporting/{name.removesuffix('_figure')}.<ext>")
    return problems


def test_the_catalog_follows_the_naming_and_layer_rule():
    catalog = yaml.safe_load((CONF / "base" / "catalog.yml").read_text(encoding="utf-8"))
    assert catalog_problems(catalog) == []


def test_the_catalog_rule_catches_a_misplaced_entry():
    planted = {
        "{model}.{dataset}.eigen_subspaces": {
            "type": "ntps.io.NpzDataset",
            "filepath": "data/04_feature/{model}/{dataset}/eigen_subspaces.npz",
            "versioned": True,
        },
        "summary": {"type": "pandas.CSVDataset", "filepath": "data/07_model_output/summary.csv"},
        "plot": {
            "type": MLFLOW_ARTIFACT,
            "artifact_path": "reports",
            "versioned": True,
            "dataset": {"type": "matplotlib.MatplotlibDataset", "filepath": "data/08_reporting/plot.png"},
        },
    }
    problems = catalog_problems(planted)
    assert any("05_model_input" in problem for problem in problems)
    assert any(problem.startswith("summary: not versioned") for problem in problems)
    assert any(problem.startswith("summary: an entry across pairs") for problem in problems)
    assert any(problem.startswith("plot: a figure's entry") for problem in problems)


def test_the_paper_grid_catalog_differs_from_base_only_in_removing_large_intermediates():
    base = yaml.safe_load((CONF / "base" / "catalog.yml").read_text(encoding="utf-8"))
    grid = yaml.safe_load((CONF / "paper_grid" / "catalog.yml").read_text(encoding="utf-8"))
    for name, entry in grid.items():
        assert {key: value for key, value in entry.items() if key != "remove_when_released"} == base[name], name


def parameter_keys(parameters: dict) -> list[tuple[str, ...]]:
    """Every key path; in the model and dataset registries the entries' field names, not their names."""
    paths = []

    def walk(node: dict, path: tuple[str, ...]) -> None:
        for key, value in node.items():
            registry_entry = len(path) == 1 and path[0] in ("models", "datasets")
            child = path if registry_entry else (*path, str(key))
            if not registry_entry:
                paths.append(child)
            if isinstance(value, dict):
                walk(value, child)

    walk(parameters, ())
    return paths


def source_names() -> tuple[set[str], set[str]]:
    """The quoted names and keyword-parameter names in src/ntps, and the params: inputs of nodes."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in SOURCE.rglob("*.py"))
    quoted = set(re.findall(r"""["']([A-Za-z_]\w*)["']""", text))
    keywords = set(re.findall(r"\b([a-z_]\w*)\s*(?::\s*[\w\[\], |.]+)?\s*=\s*[^=]", text))
    params = set(re.findall(r"params:(\w+)", text))
    return quoted | keywords, params


def dead_parameter_keys(parameters: dict, names: set[str], params_inputs: set[str], builders: str) -> list[str]:
    dead = []
    for path in parameter_keys(parameters):
        top_read = path[0] in params_inputs or re.search(rf"""["']{path[0]}["']""", builders)
        if not top_read or (len(path) > 1 and path[-1] not in names):
            dead.append(".".join(path))
    return dead


def test_every_parameter_key_is_read_by_some_node_or_pipeline_builder():
    """A key whose name appears nowhere in the source, or whose top-level key no node takes as params:
    and no pipeline builder reads, is dead: changing it would change nothing."""
    names, params_inputs = source_names()
    builders = "\n".join(path.read_text(encoding="utf-8") for path in (SOURCE / "pipelines").rglob("*.py"))
    builders += (SOURCE / "hooks.py").read_text(encoding="utf-8")
    dead = []
    for path in sorted((CONF / "base").glob("parameters*.yml")):
        parameters = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        dead += [f"{path.name}: {key}" for key in dead_parameter_keys(parameters, names, params_inputs, builders)]
    assert dead == []


def test_a_planted_dead_parameter_key_is_found():
    names, params_inputs = source_names()
    planted = {"probes": {"hidden_states": -1, "warmup_fancyness": 3}, "unread_block": {"seed": 0}}
    assert dead_parameter_keys(planted, names, params_inputs, "") == [
        "probes.warmup_fancyness",
        "unread_block",
        "unread_block.seed",
    ]


def product_text_files() -> list[Path]:
    """What users and readers of the code see: README.md, docs/, conf/ and src/ntps (not generated files)."""
    files = [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").rglob("*.md"))]
    files += sorted(path for path in CONF.rglob("*") if path.suffix in (".yml", ".md"))
    files += sorted(SOURCE.rglob("*.py"))
    return files


def numbered_lines(path: Path) -> list[tuple[int, str]]:
    return list(enumerate(path.read_text(encoding="utf-8").splitlines(), start=1))


def matching_lines(path: Path, pattern: re.Pattern, lines: list[tuple[int, str]]) -> list[str]:
    return [f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}" for number, line in lines if pattern.search(line)]


@pytest.mark.parametrize("pattern", [HISTORY, COMMIT_HASH], ids=["history", "commit_hash"])
def test_no_account_of_the_projects_development_in_the_product(pattern):
    hits = [hit for path in product_text_files() for hit in matching_lines(path, pattern, numbered_lines(path))]
    assert hits == []


def test_the_history_patterns_find_what_they_are_for():
    assert HISTORY.search("measured this session from a fresh clone of 49c8905")
    assert HISTORY.search("which this project used until now")
    assert COMMIT_HASH.search("the code of 107dd00 and ce2c2a6")
    assert not COMMIT_HASH.search("a 1e-10 tolerance, 0x7f, float64 and cafe")
    assert not COMMIT_HASH.search("sha256:0a1b2c3d4e5f6a7b")


def comments_and_docstrings(path: Path) -> list[tuple[int, str]]:
    """Lines of comments and of triple-quoted strings (docstrings) of a Python file."""
    lines, in_string = [], False
    for number, line in numbered_lines(path):
        quotes = line.count('"""')
        if in_string or quotes:
            lines.append((number, line))
        elif "#" in line:
            lines.append((number, line[line.index("#") :]))
        if quotes % 2:
            in_string = not in_string
    return lines


def yaml_comments(path: Path) -> list[tuple[int, str]]:
    return [(number, line[line.index("#") :]) for number, line in numbered_lines(path) if "#" in line]


def test_no_timings_in_source_comments_or_configuration_comments():
    """Measured times live in benchmarks/ and docs/, where a rerun updates them."""
    hits = [
        hit for path in sorted(SOURCE.rglob("*.py")) for hit in matching_lines(path, TIMING, comments_and_docstrings(path))
    ]
    hits += [hit for path in sorted(CONF.rglob("*.yml")) for hit in matching_lines(path, TIMING, yaml_comments(path))]
    assert hits == []


def test_the_timing_pattern_finds_timings():
    assert TIMING.search("# about 0.8 s per layer at d = 576")
    assert TIMING.search("measured 27x faster on 768 texts")
    assert TIMING.search("(0.46 s against 0.29 s at d = 4,096)")
    assert not TIMING.search("# s = the number of shuffles; k = 5 % of d; 1e-10")


def test_pages_named_in_source_and_configuration_exist():
    """Comments point readers to docs/<page>.md; each such page exists."""
    missing = []
    for path in [*sorted(SOURCE.rglob("*.py")), *sorted(CONF.rglob("*.yml"))]:
        for page in re.findall(r"docs/([\w-]+\.md)", path.read_text(encoding="utf-8")):
            if not (REPOSITORY / "docs" / page).exists():
                missing.append(f"{path.relative_to(REPOSITORY)}: docs/{page}")
    assert missing == []
