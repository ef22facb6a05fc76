#!/usr/bin/python3
"""Peer measurements with Optuna 3.1.0's TPE (Debian: apt-get install python3-optuna; run with /usr/bin/python3).

  overhead N...   time per TPE suggestion after N completed trials, 4 float parameters, in-memory storage
  quality SEEDS   best value after 100 evaluations on Branin and Hartmann-6, TPE and random, per seed

Prints one JSON object on stdout.
"""
import json
import math
import sys
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)

HARTMANN_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
HARTMANN_P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
              [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
HARTMANN_ALPHA = [1.0, 1.2, 3.0, 3.2]


def branin(x1, x2):
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1 ** 2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


def hartmann6(x):
    total = 0.0
    for i in range(4):
        inner = sum(HARTMANN_A[i][j] * (x[j] - HARTMANN_P[i][j]) ** 2 for j in range(6))
        total -= HARTMANN_ALPHA[i] * math.exp(-inner)
    return total


def overhead(sizes, probes=20):
    result = {}
    for n in sizes:
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
        def objective(trial):
            return sum(trial.suggest_float(f"x{i}", -5.0, 5.0) ** 2 for i in range(4))
        study.optimize(objective, n_trials=n)
        spent = 0.0
        for _ in range(probes):
            start = time.perf_counter()
            trial = study.ask()
            xs = [trial.suggest_float(f"x{i}", -5.0, 5.0) for i in range(4)]
            spent += time.perf_counter() - start
            study.tell(trial, sum(x * x for x in xs))
        result[str(n)] = spent / probes * 1000.0
    return {"ms_per_suggestion": result, "optuna": optuna.__version__}


def quality(seeds, evaluations=100):
    out = {"branin": {"tpe": [], "random": []}, "hartmann6": {"tpe": [], "random": []}, "optuna": optuna.__version__}
    for seed in seeds:
        for name, sampler in (("tpe", optuna.samplers.TPESampler(seed=seed)), ("random", optuna.samplers.RandomSampler(seed=seed))):
            study = optuna.create_study(sampler=sampler)
            study.optimize(lambda t: branin(t.suggest_float("x1", -5.0, 10.0), t.suggest_float("x2", 0.0, 15.0)), n_trials=evaluations)
            out["branin"][name].append(study.best_value)
        for name, sampler in (("tpe", optuna.samplers.TPESampler(seed=seed)), ("random", optuna.samplers.RandomSampler(seed=seed))):
            study = optuna.create_study(sampler=sampler)
            study.optimize(lambda t: hartmann6([t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)]), n_trials=evaluations)
            out["hartmann6"][name].append(study.best_value)
    return out


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "overhead":
        print(json.dumps(overhead([int(a) for a in sys.argv[2:]])))
    elif mode == "quality":
        print(json.dumps(quality([int(a) for a in sys.argv[2:]])))
    else:
        sys.exit(f"unknown mode {mode}")
