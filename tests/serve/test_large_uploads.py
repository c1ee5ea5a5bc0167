"""Large uploads run on a low-priority thread of their own; small ones in the request thread."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

from braintumor.serve import app as app_module
from braintumor.serve.errors import ApiError
from braintumor.serve.large_uploads import LargeUploadLane, lower_thread_priority

from .conftest import dicom_bytes

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the nice value is per thread on Linux only")


def _own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@linux_only
def test_lane_threads_run_at_a_lower_priority_than_the_caller():
    lane = LargeUploadLane(nice=7, workers=2)
    try:
        assert lane.lowered
        caller = _own_nice()
        assert lane.run(_own_nice) == min(19, caller + 7)
        assert _own_nice() == caller  # the caller's own priority is untouched
    finally:
        lane.close()


def test_lane_passes_results_and_errors_through():
    lane = LargeUploadLane(nice=0)
    try:
        assert not lane.lowered
        assert lane.run(lambda a, b=0: a + b, 2, b=3) == 5

        def refuse():
            raise ApiError(422, "unreadable_image", "The DICOM file cannot be used: no pixels.")

        with pytest.raises(ApiError) as err:
            lane.run(refuse)
        assert err.value.status_code == 422
    finally:
        lane.close()


def test_nothing_to_lower_without_an_increment():
    assert lower_thread_priority(0) is False


@linux_only
def test_large_upload_is_decoded_and_classified_on_the_lane_a_small_one_in_the_request(
        make_client, predictor, scan_png, monkeypatch):
    seen: list[tuple[str, int]] = []
    real = app_module.decode_upload

    def spy(*args, **kwargs):
        seen.append((threading.current_thread().name, _own_nice()))
        return real(*args, **kwargs)

    models: list[str] = []
    real_predict = predictor.predict_one

    def predict_spy(*args, **kwargs):
        models.append(threading.current_thread().name)
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(app_module, "decode_upload", spy)
    monkeypatch.setattr(predictor, "predict_one", predict_spy)
    client = make_client(large_upload_nice=5)
    rng = np.random.default_rng(0)
    large = dicom_bytes(rng.integers(0, 4096, (1400, 1400), dtype=np.uint16))
    assert client.post("/v1/predict", files={"file": ("a.png", scan_png)}).status_code == 200
    r = client.post("/v1/predict", files={"file": ("b.dcm", large)})
    assert r.status_code == 200, r.text
    (small_thread, small_nice), (large_thread, large_nice) = seen
    assert not small_thread.startswith("braintumor-large-upload")
    assert large_thread.startswith("braintumor-large-upload")
    assert large_nice == min(19, small_nice + 5)
    assert models == [small_thread, large_thread]  # the model pass follows its decode


def test_large_upload_nice_is_checked(make_client):
    with pytest.raises(ValueError, match="large_upload_nice"):
        make_client(large_upload_nice=25)
