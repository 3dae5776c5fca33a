"""Schemathesis hooks of scripts/api-fuzz: the out-of-scope check.

Loaded through SCHEMATHESIS_HOOKS=api_fuzz_hooks. XL_FUZZ_FORBIDDEN is a comma-separated list
of strings that must never appear in an answer to this run's user (another community's id, which
every id of its cameras and gates contains, and its Chinese name) unless the request itself
carried them (an error may quote what was asked for: that tells the caller nothing new).
"""

import os
from urllib.parse import unquote

import schemathesis
from hypothesis.internal import lambda_sources

# Hypothesis describes the lambdas of its strategies by parsing their source file. On CPython
# 3.11 that parse can fail deep in a call stack ("SystemError: AST constructor recursion depth
# mismatch", CPython's ast module), which schemathesis then reports as an error of the
# operation it was generating for. The description only names the lambda in a repr: fall back
# to a plain name instead of failing the run.
_describe = lambda_sources.lambda_description


def _lambda_description(f):
    try:
        return _describe(f)
    except (SystemError, RecursionError):
        return "lambda: <unknown>"


lambda_sources.lambda_description = _lambda_description

FORBIDDEN = [s for s in os.environ.get("XL_FUZZ_FORBIDDEN", "").split(",") if s]


@schemathesis.check
def out_of_scope(ctx, response, case):
    """No answer names another community's data that the request did not name itself."""
    if not FORBIDDEN:
        return None
    body = response.content.decode("utf-8", "replace")
    request = response.request
    sent = unquote(request.url or "")
    raw = request.body
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    sent += raw or ""
    # JSON escapes non-ASCII as \uXXXX only if asked to; the hub sends UTF-8. Compare both ways.
    for token in FORBIDDEN:
        if token in body and token not in sent:
            raise AssertionError(
                f"out of scope: the answer names {token!r} (another community's data) to a user "
                f"scoped away from it: {body[:300]}"
            )
    return None
