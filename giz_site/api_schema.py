"""OpenAPI schema additions: the one error shape documented on every operation."""

ERROR_SCHEMA = {
    "type": "object",
    "description": 'Every error: {"error": {"code", "message", "details"}}.',
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "Short machine-readable reason, e.g. `not_found`."},
                "message": {"type": "string", "description": "What went wrong and what to do about it."},
                "details": {"type": "object", "additionalProperties": True, "description": "Field errors etc."},
            },
            "required": ["code", "message", "details"],
        },
    },
    "required": ["error"],
}

ERROR_STATUSES = {
    "400": "Invalid input (see error.details).",
    "401": "Not authenticated.",
    "403": "Not allowed.",
    "404": "Not found, or not yours.",
    "405": "Method not allowed.",
    "406": "Not acceptable.",
    "413": "Too large (file size or pixels).",
    "415": "Unsupported media type.",
    "429": "Throttled: retry after error.details.retry_after_s seconds.",
    "503": "No active models, or an upstream image service is unavailable.",
}


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: document the error contract on every operation."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for code, description in ERROR_STATUSES.items():
                operation["responses"].setdefault(
                    code, {"description": description, "content": {"application/json": {"schema": ref}}}
                )
    return result


def pgc_path_parameter():
    """The `pgc` path parameter, with an example (M31) the schema's readers and schemathesis can use."""
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import OpenApiExample, OpenApiParameter

    return OpenApiParameter(
        "pgc",
        OpenApiTypes.INT,
        OpenApiParameter.PATH,
        description="PGC number (HyperLEDA), up to 18 digits.",
        examples=[OpenApiExample("M31 (NGC 224)", value=2557)],
    )
