"""The faults and the scenarios built from them, and the runs that drive them.

The nemeses, each a fault with its heal (nemesis.py, store_full.py), and the
triggers that fire one when a node logs that it entered a window (triggers.py);
the scenario types (scenario.py: Ctx, Scenario, Composite), scenarios 1-14
(core_scenarios.py) and 15-32 (edge_scenarios.py), and their catalogue with the
smoke subsets (catalog.py); the soak of random schedules (soak.py) and the
negative controls (controls.py). It may import `chaos.lab`, `chaos.services`,
`chaos.judge` (a scenario's Expectation), `chaos.records` and `chaos.layout`.
The soak and the controls run repetitions of their own, so they also import
`chaos.repetition`, which in turn imports only scenario.py of this package.
"""
