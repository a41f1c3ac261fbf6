"""conformance: run one normalization case on every ML framework and report,
with numbers, where they disagree and why."""

__version__ = "0.1.0"
