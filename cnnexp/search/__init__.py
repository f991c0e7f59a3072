"""`cnnexp search`: coarse -> fine random search in log space with Optuna, tracked in MLflow.

config   the recipe's `search` section (schema, checks) -> Plan
narrow   pure narrowing and edge-check functions
storage  Optuna storage: create once, tickets, exact counts, dead-worker recovery
stages   root/stage set-up in the storage (ranges, MLflow parent and stage runs)
trial    one trial: sample, fit, report, tell
worker   the per-process loop (dataset loaded once), spawn entry point
monitor  console output read from the storage
results  / plots  what a finished search reports
driver   run_search: the function behind the command
"""

from cnnexp.search.run import SearchOptions, run_search

__all__ = ["SearchOptions", "run_search"]
