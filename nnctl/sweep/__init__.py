"""Hyperparameter sweeps: a sweep file (base config, objective, search space, strategy), trials run
by a local process pool or a Dask cluster, results recorded as they finish, resumable.

- `spec`: the sweep file model and the search space;  `strategies`: grid, random, tpe (Optuna)
- `runner`: plan, validate, run, record, resume, leaderboard;  `trial`: one trial, in a worker
- `executors`: local worker processes and Dask;  `worker`: a local worker's main loop
- `live`: the rich live table;  `plot`: the optional PNG

Nothing is imported here on purpose: a local worker imports `nnctl.sweep.worker` first and must set
its BLAS thread limits before numpy loads.
"""
