# The two commands of the README. Both run the (idempotent) setup first.
.PHONY: setup run test demo-project

setup:
	@bash scripts/setup.sh

# Set up, build optimised, and open the GUI on the bundled demo project.
run: setup
	cargo run --release

# Set up and run every test: unit, statistical, CLI, headless GUI (kittest + lavapipe) and the
# real-window smoke test under Xvfb.
test: setup
	cargo test --all-targets -- --test-threads=2

# Regenerate projects/demo with the documented generator (deterministic: same seed, same bytes).
demo-project:
	cargo run --release -- demo --out projects/demo --force
