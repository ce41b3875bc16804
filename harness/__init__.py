"""The benchmark harness: CLI, run specs and budgets, clocks, results, reporting."""
