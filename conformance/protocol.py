"""The parent ↔ worker messages, one JSON object per line (see :mod:`conformance.worker`).

Cases travel pickled (base64), so the worker neither re-reads nor re-validates
case files, and generated inputs are made once.
"""

from __future__ import annotations

import base64
import json
import pickle


def encode_case(case) -> str:
    return json.dumps({"case": base64.b64encode(pickle.dumps(case)).decode("ascii")}) + "\n"


def decode_case(line: str):
    return pickle.loads(base64.b64decode(json.loads(line)["case"]))
