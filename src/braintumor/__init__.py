"""braintumor: brain MRI slice classification with Grad-CAM evidence.

A research tool, never a diagnosis.
"""

__version__ = "0.1.0"

DISCLAIMER = (
    "Research use only. braintumor is not a medical device and its output is not a diagnosis; "
    "a qualified clinician must interpret every scan."
)
