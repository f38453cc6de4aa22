# The two commands of the README. Both run the (idempotent) setup first.
.PHONY: setup run test package check-package demo-project demo-model

setup:
	@bash scripts/setup.sh

# Set up, build optimised, and open the GUI on the bundled demo project.
run: setup
	cargo run --release

# Set up and run every test: unit, statistical, CLI, headless GUI (kittest + lavapipe) and the
# real-window smoke test under Xvfb.
test: setup
	cargo test --all-targets -- --test-threads=2

# The installable package for the CPU: target/package/contrario_VERSION_amd64.deb (a release
# build of its own in target/package-build, libtorch's CPU libraries, the weights, the demo).
package: setup
	bash scripts/package.sh

# Unpack the package into a scratch root and run it there with nothing of this machine's
# environment (CI runs it after the tests).
check-package: package
	bash scripts/check_package.sh

# Regenerate projects/demo with the documented generator (deterministic: same seed, same bytes).
demo-project:
	cargo run --release -- demo --out projects/demo --force

# Retrain the U-Flow the demo ships (projects/demo/models/uflow-l2/<category>, the default
# settings' model; about 15 s per category on 2 cores) on a scratch copy, so that project.ron stays as the generator writes it.
demo-model:
	rm -rf target/demo-train && cp -r projects/demo target/demo-train && rm -rf target/demo-train/models
	for c in fabric leather wood; do cargo run --release -- train --project target/demo-train --model uflow-l2 --category $$c || exit 1; done
	rm -rf projects/demo/models && cp -r target/demo-train/models projects/demo/models
