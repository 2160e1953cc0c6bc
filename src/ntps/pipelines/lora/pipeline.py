"""`kedro run --pipelines=lora` (after a `--pipelines=ntps` run): LoRA fine-tuning of every pair, the
NTPS stages rerun on the adapted models, and the reports that answer "is LoRA worth it for this
model on this task?" (paper, Section 4.2 and Appendix A.6).

A folder of its own because Kedro loads only the requested pipeline's folder.
"""

from kedro.pipeline import Pipeline

from ntps.pipelines import lora_finetuning, lora_reports, ntps_after_lora
from ntps.pipelines.fan_out import compose

STAGES = (lora_finetuning, ntps_after_lora, lora_reports)


def create_pipeline(**kwargs) -> Pipeline:
    return compose(STAGES)
