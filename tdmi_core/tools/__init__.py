"""Programs over the whole core: benchmarks, mode comparison, prediction and metric runners.

The layers below (``runtime``, ``train``, ``eval``, ``data``, ``models``) never import this package;
its modules may import any of them (never ROS). Each module is one command with ``main(argv)``.
"""
