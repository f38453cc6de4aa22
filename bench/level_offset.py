"""The level (log10 NFA) at which a model's map, shifted by its out-of-sample offset, reads as it
would without the offset: the project's level (the eval's threshold) plus the offset.

    python3 bench/level_offset.py EVAL_JSON CATEGORY
"""
import json
import sys

v = json.load(open(sys.argv[1]))
cal = v["categories"][sys.argv[2]].get("validation_calibration") or {}
print(v["threshold"] + cal.get("level_offset", 0.0))
