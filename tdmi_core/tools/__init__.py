"""Programs above train, eval and runtime: benchmarks, mode comparison, prediction, evaluation and metric runners.

The layers below (``runtime``, ``train``, ``eval``, ``data``, ``models``) never import this package;
its modules may import all of tdmi_core (never ROS). Each module is one command with ``main(argv)``.
"""
