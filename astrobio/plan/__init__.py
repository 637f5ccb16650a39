"""The memory and time planner of parallel plans, and `python -m astrobio.plan`.

    memory.py    per-rank memory: the analytic model and a measurement on fake tensors
    __main__.py  the CLI: will a plan fit the GPUs, and `--search` for the cheapest that does
"""
