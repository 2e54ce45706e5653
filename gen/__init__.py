"""The generator around the blocks: units, presets and config files, the manifest, simulation drivers,
the command line (cli/), flows (flows/), the cost model and explorer (cost/), benchmarks (bench/)."""
