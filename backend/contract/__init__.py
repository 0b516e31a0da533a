"""The published mobile contract: the OpenAPI document and the files built from it."""
