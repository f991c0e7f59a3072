"""`cnnexp search`: coarse -> fine random search in log space with Optuna, tracked in MLflow.

config   the recipe's `search` section (schema, checks) -> Plan
narrow   pure narrowing and edge-check functions (words that match the numbers)
signal   noise, ties, stages without signal, edges that stand out (pure)
storage  Optuna storage: create once, tickets, exact counts, dead-worker recovery
journal  the default journal file: checked, torn last lines set aside
attrs    every Optuna user-attribute name cnnexp writes
stages   root/stage set-up in the storage (ranges, MLflow parent and stage runs)
trial    one trial: sample, fit, report, tell
worker   the per-process loop (dataset loaded once), spawn entry point
confirm  the confirming stage: best configuration vs the recipe over seeds
monitor  console output read from the storage
results  / plots / render   what a finished search reports
run      run_search: the function behind the command
"""

from cnnexp.search.run import SearchOptions, run_search

__all__ = ["SearchOptions", "run_search"]
