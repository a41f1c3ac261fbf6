"""Schema pieces several operators share."""

from __future__ import annotations

AXIS_LIST = {
    "oneOf": [
        {"type": "integer"},
        {"type": "array", "items": {"type": "integer"}, "minItems": 1},
    ]
}

#: A case names either the kept axes (Keras ``axis``) or the reduced ones
#: (``tf.nn.moments(axes=...)``); the loader derives the other.
AXES_SCHEMA = {
    "feature_axes": {**AXIS_LIST, "description": "axes KEPT (Keras `axis`); all others are reduced"},
    "reduction_axes": {**AXIS_LIST, "description": "axes REDUCED (tf.nn.moments `axes`); all others are kept"},
}


def setting_schema(value_schema: dict) -> dict:
    """A value, or ``{framework_default: value-the-expected-outputs-assume}``."""
    return {
        "oneOf": [
            value_schema,
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["framework_default"],
                "properties": {"framework_default": value_schema},
            },
        ]
    }
