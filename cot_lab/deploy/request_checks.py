"""What a request to the model server may carry: its body read, decoded, parsed and checked, or refused.

    body = parse_body(await read_body(request), "score")   # a pydantic model: .text, .version (, .max_new_tokens)

Each refusal is a Rejected(status, message) that the server answers as {"detail": message}: 413 for a body over
MAX_BODY_BYTES or text over MAX_TEXT_BYTES (64 KiB of UTF-8), 400 for a body that is not UTF-8 or not JSON (or
text with a lone surrogate escape), 422 for fields that fail the schema (a missing or empty text, an unknown
field, a non-integer or < 1 max_new_tokens, a non-integer version). Each message says what to send instead.
pydantic (which comes with FastAPI, the `deploy` extra) is imported on first use, never on `import cot_lab`.
"""
from __future__ import annotations

import json
from functools import cache

MAX_TEXT_BYTES = 64 * 1024           # text per request, UTF-8 bytes
MAX_BODY_BYTES = 8 * MAX_TEXT_BYTES  # raw body: room for JSON escapes (\uXXXX: 6 bytes for one character)
DEFAULT_NEW_TOKENS = 16
MAX_MESSAGE = 500                    # characters of an error message: an unknown "word" can be 64 KiB long
EXAMPLE = {"score": '{"text": "<doc> the greebut gonels ."}', "generate": '{"text": "<doc> the", "max_new_tokens": 16}'}


class Rejected(Exception):
    """A request refused with an HTTP status (4xx/5xx) and a message for the client (cut to MAX_MESSAGE)."""
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = int(status), message[:MAX_MESSAGE] + ("..." if len(message) > MAX_MESSAGE else "")


@cache
def schemas() -> dict:
    """The request bodies' pydantic models, built on first use (pydantic comes with the deploy extra)."""
    from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

    class ScoreBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: StrictStr
        version: StrictInt | None = None

    class GenerateBody(ScoreBody):
        max_new_tokens: StrictInt = Field(DEFAULT_NEW_TOKENS, ge=1)

    return {"score": ScoreBody, "generate": GenerateBody}


async def read_body(request) -> bytes:
    """The request's raw body, read up to MAX_BODY_BYTES: a larger one is refused (413) before it is all held."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise Rejected(413, f"the request body is over {MAX_BODY_BYTES} bytes; text may be at most "
                                f"{MAX_TEXT_BYTES} bytes (64 KiB): send shorter text")
    return bytes(raw)


def parse_body(raw: bytes, endpoint: str):
    """The raw body checked, as the endpoint's pydantic model; Rejected (400, 413 or 422) otherwise."""
    from pydantic import ValidationError

    example = EXAMPLE[endpoint]
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise Rejected(400, f"the request body is not valid UTF-8 (byte {error.start}: {error.reason}): send JSON "
                            f"encoded as UTF-8, e.g. {example}") from None
    except json.JSONDecodeError as error:
        raise Rejected(400, f"the request body is not JSON ({error.msg} at character {error.pos}): send e.g. "
                            f"{example}") from None
    try:
        body = schemas()[endpoint].model_validate(data)
    except ValidationError as error:
        said = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" + (
            "" if e["type"] == "missing" else f" (got {repr(e.get('input'))[:60]})") for e in error.errors())
        raise Rejected(422, f"{said}; send e.g. {example}") from None
    try:
        size = len(body.text.encode("utf-8"))
    except UnicodeEncodeError:  # JSON can carry a lone surrogate (\ud800), which is no character at all
        raise Rejected(400, "text holds an unpaired UTF-16 surrogate (e.g. \\ud800): send valid Unicode") from None
    if size > MAX_TEXT_BYTES:
        raise Rejected(413, f"text is {size} bytes, more than the {MAX_TEXT_BYTES} bytes (64 KiB) a request may "
                            "carry: send shorter text")
    if not body.text.strip():
        raise Rejected(422, f"text is empty: send at least one word of the model's language, e.g. {example}")
    return body
