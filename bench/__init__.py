"""The benchmark suite: bare limits, the distributed and embedded profiles, and their ratios."""
