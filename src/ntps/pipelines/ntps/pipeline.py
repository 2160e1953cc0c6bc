r"""`kedro run --pipelines=ntps`: every stage pipeline, joined by their catalog names.

The fan-out (ntps.pipelines.fan_out), for run.models = [m] and run.datasets = [a, b, c], where b and
c are label views of the same texts (entries that differ only in label_column / label_pattern):

    data_ingestion     per dataset   a.labeled_texts         b.labeled_texts       c.labeled_texts
    language_model     per model     m.language_model_card
                                          |                         \                   /
    tokenization       per sample    m.a.tokenized_texts     node m.b__c.tokenize_texts: m.b.tokenized_texts,
                                          |                                            m.c.tokenized_texts
    hidden_statistics  per sample    one pass (m.a)          one pass (node m.b__c.extract_hidden_features),
                                                             meanXY per view
                                     m.a.layer_statistics,   m.b.layer_statistics, m.c.layer_statistics,
                                     m.a.pooled_features     m.b.pooled_features,  m.c.pooled_features
    eigen_subspaces    per pair      m.a.eigen_subspaces      m.b. ...              m.c. ...
    ntps_scores                      m.a.ntps_table, m.a.excess_loss_table
    probes                           m.a.probe_metrics
                                          \                         |                   /
    reporting          once          ntps_table, excess_loss_table (every pair), figures
    correlation_reports              probe_metrics (every pair), correlations, report
    run_report                       layer_probe_table (every pair), layer_choices, run_report.html

Each stage folder's `template` is its un-namespaced pipeline; `per_entry`, `per_pair` and
`per_text_sample` copy it into the namespaces above (the shared nodes of label views run in the
sample's namespace m.b__c, before any node of m.b or m.c, so that no namespace is interrupted).
A folder of its own because Kedro loads only the requested pipeline's folder.
"""

from kedro.pipeline import Pipeline

from ntps.pipelines import (
    correlation_reports,
    data_ingestion,
    eigen_subspaces,
    hidden_statistics,
    language_model,
    ntps_scores,
    probes,
    reporting,
    run_report,
    tokenization,
)
from ntps.pipelines.fan_out import compose

STAGES = (
    data_ingestion,
    language_model,
    tokenization,
    hidden_statistics,
    eigen_subspaces,
    ntps_scores,
    reporting,
    probes,
    correlation_reports,
    run_report,
)


def create_pipeline(**kwargs) -> Pipeline:
    return compose(STAGES)
