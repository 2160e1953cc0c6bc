"""The studies built on the score tables (pandas and matplotlib): NTPS against probes and against
LoRA gains, and the figures they share."""
