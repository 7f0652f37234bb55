"""counterfeit's benchmarks: each module a suite that records what it measured, with the machine and the command, in
bench/results/ (indexed in bench/README.md). Run one from the repository root:

    python -m bench                   # the suites, a line each
    python -m bench speed --only dcgan   # the same as python -m bench.speed --only dcgan
    python -m bench index             # rewrite bench/README.md from the records
"""
