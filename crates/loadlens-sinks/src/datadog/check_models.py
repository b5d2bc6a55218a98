"""Validate captured Datadog API payloads against Datadog's official models.

Usage: python3 check_models.py CAPTURED.json
CAPTURED.json is a list of {"model": NAME, "what": LABEL, "body": JSON}. Each body is
deserialised with the model of the official `datadog-api-client` package, strictly: type checks
on, and — beyond what the client itself enforces — an attribute the model does not define, or a
value outside an enum, is an error too (the client would silently keep both).

Exit codes: 0 all valid, 1 some invalid (each error printed), 3 the package is missing.
"""

import json
import sys

try:
    from datadog_api_client import Configuration
    from datadog_api_client.model_utils import (
        ModelComposed,
        ModelSimple,
        OpenApiModel,
        UnparsedObject,
        validate_and_convert_types,
    )
    from datadog_api_client.v1.model.api_error_response import APIErrorResponse
    from datadog_api_client.v1.model.authentication_validation_response import (
        AuthenticationValidationResponse,
    )
    from datadog_api_client.v1.model.distribution_points_payload import DistributionPointsPayload
    from datadog_api_client.v1.model.event_create_request import EventCreateRequest
    from datadog_api_client.v1.model.event_create_response import EventCreateResponse
    from datadog_api_client.v1.model.intake_payload_accepted import (
        IntakePayloadAccepted as IntakePayloadAcceptedV1,
    )
    from datadog_api_client.v1.model.monitor import Monitor
    from datadog_api_client.v2.model.intake_payload_accepted import (
        IntakePayloadAccepted as IntakePayloadAcceptedV2,
    )
    from datadog_api_client.v2.model.metric_payload import MetricPayload
except ImportError as e:  # the caller decides whether that is a skip or a failure
    print(f"datadog-api-client is not installed: {e}")
    sys.exit(3)

MODELS = {
    "EventCreateRequest": EventCreateRequest,
    "MetricPayload": MetricPayload,
    "DistributionPointsPayload": DistributionPointsPayload,
    "EventCreateResponse": EventCreateResponse,
    "IntakePayloadAcceptedV1": IntakePayloadAcceptedV1,
    "IntakePayloadAcceptedV2": IntakePayloadAcceptedV2,
    "Monitor": Monitor,
    "AuthenticationValidationResponse": AuthenticationValidationResponse,
    "APIErrorResponse": APIErrorResponse,
}


def strict(obj, path, errors):
    """Walk a deserialised model: unknown attributes and values outside enums are errors."""
    if isinstance(obj, UnparsedObject):
        errors.append(f"{path}: matches none of the model's alternatives: {obj._data_store}")
        return
    if isinstance(obj, ModelSimple):
        if obj._unparsed:
            allowed = sorted(map(str, type(obj).allowed_values))
            errors.append(f"{path}: {obj._data_store.get('value')!r} is not one of {allowed}")
        return
    if isinstance(obj, OpenApiModel):
        known = None if isinstance(obj, ModelComposed) else set(type(obj).openapi_types)
        for name, value in obj._data_store.items():
            if known is not None and name not in known:
                errors.append(f"{path}.{name}: unknown attribute of {type(obj).__name__}")
            strict(value, f"{path}.{name}", errors)
        return
    if isinstance(obj, list):
        for i, x in enumerate(obj):
            strict(x, f"{path}[{i}]", errors)


def main():
    with open(sys.argv[1]) as f:
        captured = json.load(f)
    config = Configuration()
    config.check_input_type = True
    failed = 0
    for item in captured:
        model = MODELS[item["model"]]
        where = f"{item['what']} ({item['model']})"
        errors = []
        try:
            obj = validate_and_convert_types(item["body"], (model,), ["body"], True, True, config)
            strict(obj, "body", errors)
            if not errors and getattr(obj, "_unparsed", False):
                errors.append("body: not parsed by the model")
        except Exception as e:  # ApiTypeError, ApiValueError, ApiAttributeError, missing fields
            errors.append(f"{type(e).__name__}: {e}")
        if errors:
            failed += 1
            for e in errors:
                print(f"INVALID {where}: {e}")
    print(f"{len(captured) - failed} of {len(captured)} payloads valid")
    sys.exit(1 if failed else 0)


main()
