"""Domain code that needs torch, transformers, peft or scikit-learn: forward passes and their
statistics, probes, the fine-tuned classifiers and their training."""
