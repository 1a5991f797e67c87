"""The chaos suite: long seeded runs of the whole system in the sandbox, under faults and kills.

- `schedule`   the seeded plan of a run: job arrivals, faults, kills, configuration changes
- `processes`  the process kinds the run keeps alive and kills (reconcile, router; a new kind is one entry)
- `invariants` the promises, checked from the simulators' own records
- `run`        one run: sandbox, processes, the schedule applied, invariants checked, figures
`python -m tests.chaos` (or `make chaos`) runs it from a shell.
"""
