"""The README's own-model-and-data example, exactly as the README shows it: its conf/local/parameters.yml
with a hub model (a tiny random Qwen2 saved under the README's id in a hub cache laid out as the hub
client lays it out) and a CSV of the README's columns, run offline to the run report."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import yaml

from tests.conftest import REPOSITORY, kedro_run
from tests.hub_cache import save_family


def readme_example() -> str:
    """The YAML block of the README's "Your own model and data" section."""
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Your own model and data", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    return block


@pytest.mark.end_to_end
def test_the_readmes_example_runs_as_written(project, model_cache, embedded_model, tmp_path):
    example = readme_example()
    parameters = yaml.safe_load(example)
    (model_name,) = parameters["run"]["models"]
    (dataset_name,) = parameters["run"]["datasets"]
    model, dataset = parameters["models"][model_name], parameters["datasets"][dataset_name]

    hf_home = tmp_path / "hf_home"
    save_family(hf_home / "hub", "qwen2", embedded_model[0], repo_id=model["hf_id"])
    csv = project / dataset["path"]
    csv.parent.mkdir(parents=True, exist_ok=True)
    words = ["great", "awful", "moving", "boring", "fresh", "stale"]
    pd.DataFrame(
        {
            dataset["text_column"]: [f"a {words[i % 6]} film, number {i}" for i in range(48)],
            dataset["label_column"]: ["positive", "negative"] * 24,
        }
    ).to_csv(csv, index=False)
    (project / "conf/local/parameters.yml").write_text(example)

    result = kedro_run(project, model_cache, extra_env={"HF_HOME": str(hf_home)})
    assert result.returncode == 0, result.stderr[-4000:]
    log = result.stdout + result.stderr
    assert f"this run loads model {model_name}: Hugging Face id {model['hf_id']}" in log
    assert f"this run loads dataset {dataset_name}: local {dataset['path']}" in log
    (report,) = (project / "data/08_reporting/run_report_markdown.md").glob("*/*")
    assert f"### {model_name} / {dataset_name}" in report.read_text()
