"""Programs above train, eval and runtime (benchmarks, evaluation runners, CLIs); may import all of tdmi_core."""
