"""Project settings. There is no need to edit this file unless you want to change values
from the Kedro defaults. For further information, including these default values, see
https://docs.kedro.org/en/stable/configure/configuration_basics/#configuration"""

import logging
import warnings

import ntps.third_party_warnings  # noqa: F401 (filters for sessions started outside the CLI)
from ntps.hooks import InterruptedRunHook, ResourceUsageHook, RunParametersHook

HOOKS = (RunParametersHook(), ResourceUsageHook(), InterruptedRunHook())

# Installed plugins for which to disable hook auto-registration.
# DISABLE_HOOKS_FOR_PLUGINS = ("kedro-viz",)

# Class that manages the KedroSession.
# from kedro.framework.session import KedroSession
# SESSION_CLASS = KedroSession

# Class that manages storing KedroSession data.
# from kedro.framework.session.store import BaseSessionStore
# SESSION_STORE_CLASS = BaseSessionStore
# Keyword arguments to pass to the `SESSION_STORE_CLASS` constructor.
# SESSION_STORE_ARGS = {
#     "path": "./sessions"
# }

# Directory that holds configuration.
# CONF_SOURCE = "conf"

# Class that manages how configuration is loaded.
# from kedro.config import OmegaConfigLoader

# CONFIG_LOADER_CLASS = OmegaConfigLoader

# Keyword arguments to pass to the `CONFIG_LOADER_CLASS` constructor.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Kedro merges --params into each environment before the environment replaces base's top-level
    # keys, so with the default destructive merge `--params forward_pass.batch_size=8` plus any
    # conf/local parameters file would drop the rest of forward_pass. Soft merging is key by key.
    "merge_strategy": {"parameters": "soft"},
    # "config_patterns": {
    #     "spark" : ["spark*/"],
    #     "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
    # }
}

# Class that manages Kedro's library components.
# from kedro.framework.context import KedroContext
# CONTEXT_CLASS = KedroContext

# Class that manages the Data Catalog.
# from kedro.io import DataCatalog
# DATA_CATALOG_CLASS = DataCatalog

# Namespaced pipelines exchange "<model>.<dataset>.<name>" datasets by design (see ntps.pipelines.fan_out);
# Kedro's generic advice against dots in dataset names does not apply to them.
warnings.filterwarnings("ignore", message="One or more dataset names contain '.'")


class _MlflowMetricsRebinding(logging.Filter):
    """kedro-mlflow replaces each MLflow metrics entry of the catalog with one bound to the run,
    which Kedro logs as a warning per entry; every other replacement still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "Replacing dataset '%s'" and str(record.args[0]).endswith("_metrics"))


logging.getLogger("kedro.io.data_catalog").addFilter(_MlflowMetricsRebinding())
