"""The NTPS mathematics: statistics, eigen subspaces and scores. Plain numpy/scipy/torch."""
