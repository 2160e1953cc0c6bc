"""ntps.settings: runtime parameters merge key by key into an environment's."""

from __future__ import annotations


def test_runtime_params_keep_sibling_keys_when_an_environment_has_parameters(project):
    from kedro.config import OmegaConfigLoader

    from ntps import settings as project_settings

    (project / "conf/local/parameters.yml").write_text("run: {models: [smollm2_135m], datasets: [rotten_tomatoes]}\n")
    loader = OmegaConfigLoader(
        conf_source=str(project / "conf"),
        runtime_params={"forward_pass": {"batch_size": 8}},
        **project_settings.CONFIG_LOADER_ARGS,
    )
    parameters = loader["parameters"]
    assert parameters["forward_pass"]["batch_size"] == 8 and parameters["forward_pass"]["dtype"] == "auto"
    assert parameters["run"]["datasets"] == ["rotten_tomatoes"] and "sst2" in parameters["datasets"]
