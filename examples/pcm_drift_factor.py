"""Print the pcm profile's mean conductance drift factor: simulator vs closed form.

Regenerates the table in docs/pcm_drift.md. Run: ``python examples/pcm_drift_factor.py``.
"""

from cimsim.evaluation.drift_factor import drift_factor_table
from cimsim.profiles import load_profile

if __name__ == "__main__":
    print(drift_factor_table(load_profile("pcm")))
