"""Studies: variants x seeds of training under one zero-shot protocol, each final checkpoint
evaluated, then aggregated. `config.py` resolves the study TOML, `runner.py` runs the cells and
`aggregate.py` writes the summary, figure and comparison frames (maths in `analyses/`)."""
