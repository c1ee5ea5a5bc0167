"""Response shapes, declared so that ``/docs`` shows scripts exactly what they will get."""

from __future__ import annotations

from pydantic import BaseModel, Field

from braintumor import DISCLAIMER


class ErrorResponse(BaseModel):
    error: str = Field(description="stable code, e.g. upload_too_large, unreadable_image",
                       examples=["unreadable_image"])
    detail: str = Field(description="what is wrong, in plain words")
    status: int = Field(description="the HTTP status, repeated for convenience")


class PredictionResponse(BaseModel):
    label: str = Field(description="predicted class", examples=["glioma"])
    confidence: float = Field(description="calibrated probability of the predicted class")
    probabilities: dict[str, float] = Field(
        description="calibrated probability of every class; they sum to 1")
    model: str = Field(description="model name from its card")
    checksum: str = Field(description="SHA-256 of the model's weights file")
    seconds: float = Field(description="server time to decode, classify (and explain) the scan")
    image_size: list[int] = Field(description="[height, width] of the decoded scan")
    image_format: str = Field(description="format the scan was read as: PNG, JPEG, DICOM...")
    warnings: list[str] = Field(default_factory=list,
                                description="caveats from reading, e.g. multi-frame files")
    warning: str | None = Field(
        default=None,
        description="set when the scan does not look like a brain MRI slice (the "
                    "out-of-distribution check): the result is unreliable",
        examples=[None])
    ood_score: float | None = Field(
        default=None, description="out-of-distribution score: above 1 warns; null when the "
                                  "model has no OOD calibration")
    ood_reasons: list[str] = Field(default_factory=list,
                                   description="the checks that warned, worst first")
    disclaimer: str = Field(default=DISCLAIMER)


class ExplanationResponse(PredictionResponse):
    overlay_png: str = Field(description="base64 PNG: Grad-CAM heatmap blended over the scan")
    heatmap_png: str = Field(
        description="base64 RGBA PNG: the coloured heatmap alone, transparent where weak "
                    "(stack it on scan_png to vary its opacity)")
    scan_png: str = Field(description="base64 PNG: the scan as the model read it (grayscale)")


class HealthResponse(BaseModel):
    status: str = Field(examples=["ok"])
    version: str
    model: str
    api_key_required: bool
    max_upload_bytes: int
    disclaimer: str = Field(default=DISCLAIMER)


class ModelCardResponse(BaseModel):
    name: str
    checksum: str
    classes: list[str]
    card: dict = Field(description="the model card: architecture, preprocessing, metrics...")
    ood: dict = Field(default_factory=dict,
                      description="out-of-distribution warnings: calibrated or not, thresholds")
    disclaimer: str = Field(default=DISCLAIMER)
