"""One lock for every ``warnings.catch_warnings`` block in the package.

``catch_warnings`` saves and restores the process-wide filter list; two threads of the
server doing it at once (a DICOM read beside a Grad-CAM) can restore each other's state and
leave "ignore" filters on for good. Serialising all our uses behind one lock prevents that.
"""

import threading

WARNINGS_LOCK = threading.Lock()
