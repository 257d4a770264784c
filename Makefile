# Convenience targets; each is one command you can also type yourself.

.PHONY: bench bench-smoke

bench:  ## the whole benchmark (under 15 minutes): table, JSON and logs under bench/results/
	.venv/bin/python -m bench

bench-smoke:  ## the same harness at tiny sizes (seconds): checks, not figures
	.venv/bin/python -m bench --smoke
