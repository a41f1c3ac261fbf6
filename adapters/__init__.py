"""Framework adapters, one module per framework. Each knows nothing but its
framework and the canonical case (see :mod:`conformance.adapter`)."""
