# The two commands of the README:
#   make demo   set everything up (first run: a few minutes) and run the demo on a real video
#   make test   set everything up and run the whole test suite
.PHONY: setup demo test bench clean

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	bash scripts/test.sh

bench: setup
	. scripts/env.sh && tdmi-bench

clean:
	rm -rf build .venv outputs
