"""Third-party notices a run cannot act on, filtered before they print.

Kedro loads this module as a CLI hook plugin (the `kedro.cli_hooks` entry point in pyproject.toml),
which it does before it imports any plugin's commands: kedro-mlflow's import is what emits the
first notice below, so project settings would come too late. settings.py imports it too, for
sessions started outside the CLI (a notebook, a test). Each filter names why it is harmless here.
"""

import logging
import warnings

# Kedro's config loader and kedro-mlflow register OmegaConf resolvers through the call OmegaConf
# deprecated; both keep working until those packages move to register_resolver().
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)

# kedro-mlflow's import of MLflow's pyfunc model class asks for type hints on a `predict` that the
# project never calls (it logs no MLflow models). MLflow emits it under its own "once" filter, which
# outranks any warnings filter, so it is dropped where Kedro logs captured warnings instead.
HARMLESS_CAPTURED = ("Add type hints to the `predict` method",)


class _HarmlessWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(notice in message for notice in HARMLESS_CAPTURED)


logging.getLogger("py.warnings").addFilter(_HarmlessWarnings())
