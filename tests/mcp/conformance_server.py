"""The fixtures the official MCP conformance suite's server scenarios call (test_simple_text,
test://static-text, test_simple_prompt, ...), served by the official Python SDK's MCPServer over
Streamable HTTP; the suite runs against the gateway's MCP front with this server federated behind
it, unprefixed. ``python conformance_server.py`` binds 127.0.0.1:0 and prints ``PORT <n>``."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from typing import Annotated, Any, Literal

import uvicorn
from mcp.server.mcpserver import Context, Elicit, ElicitationResult, MCPServer, Resolve, Sample
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp_types import (
    AudioContent,
    CallToolResult,
    Completion,
    CreateMessageResult,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    PromptReference,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field

# A 1x1 red PNG and a tiny WAV header: the scenarios check type, data and mimeType only.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
        "53de0000000c49444154789c63f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
    )
).decode()
WAV = base64.b64encode(
    b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00D\xac\x00\x00\x88X\x01\x00\x02\x00\x10\x00data\x00\x00\x00\x00"
).decode()

server = MCPServer("conformance-fixtures")


@server.tool()
def test_simple_text() -> str:
    """Returns simple text."""
    return "This is a simple text response for testing."


@server.tool()
def test_image_content() -> list[Any]:
    """Returns an image."""
    return [ImageContent(type="image", data=PNG, mime_type="image/png")]


@server.tool()
def test_audio_content() -> list[Any]:
    """Returns audio."""
    return [AudioContent(type="audio", data=WAV, mime_type="audio/wav")]


@server.tool()
def test_embedded_resource() -> list[Any]:
    """Returns an embedded resource."""
    resource = TextResourceContents(
        uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
    )
    return [EmbeddedResource(type="resource", resource=resource)]


@server.tool()
def test_multiple_content_types() -> list[Any]:
    """Returns text, an image and a resource."""
    resource = TextResourceContents(
        uri="test://mixed-content-resource",
        mime_type="application/json",
        text=json.dumps({"test": "data", "value": 123}),
    )
    return [
        TextContent(type="text", text="Multiple content types test:"),
        ImageContent(type="image", data=PNG, mime_type="image/png"),
        EmbeddedResource(type="resource", resource=resource),
    ]


@server.tool()
def test_error_handling() -> CallToolResult:
    """Always fails."""
    return CallToolResult(
        content=[TextContent(type="text", text="This tool intentionally returns an error for testing")], is_error=True
    )


@server.tool()
async def test_tool_with_progress(ctx: Context) -> str:
    """Reports 0, 50 and 100 of 100."""
    for progress in (0, 50, 100):
        await ctx.report_progress(progress, 100)
        await asyncio.sleep(0.05)
    return "Progress test completed"


@server.tool()
async def test_tool_with_logging(ctx: Context) -> str:
    """Logs three info messages, 50 ms apart."""
    for text in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.log("info", text)  # pyright: ignore[reportDeprecated]
        await asyncio.sleep(0.05)
    await ctx.log("debug", "below info: only for clients at debug")  # pyright: ignore[reportDeprecated]
    return "Logging test completed"


@server.tool()
async def test_reconnection() -> str:
    """Answers after 1.5 s: longer than the gateway holds a 2025-11-25 connection in the conformance run
    (streams.hold, 1 s), so the gateway closes the POST's connection first and the client resumes the
    stream with Last-Event-ID, getting the answer on that second connection (SEP-1699)."""
    await asyncio.sleep(1.5)
    return "Reconnection test completed"


@server.tool()
async def touch_watched_resource(ctx: Context) -> str:
    """Reports test://watched-resource as updated (to listen streams and subscribed sessions)."""
    await ctx.notify_resource_updated("test://watched-resource")
    if SUBSCRIBED:
        await ctx.session.send_resource_updated("test://watched-resource")
    return "touched"


def _sample(prompt: str) -> Sample:
    return Sample([SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=100)


@server.tool()
def test_sampling(prompt: str, answer: Annotated[CreateMessageResult, Resolve(_sample)]) -> str:
    """Asks the client's LLM (sampling/createMessage) and returns its answer."""
    content = answer.content
    return f"LLM response: {content.text if isinstance(content, TextContent) else content}"


class UserInfo(BaseModel):
    username: str = Field(description="User's response")
    email: str = Field(description="User's email address")


def _ask(message: str) -> Elicit[UserInfo]:
    return Elicit(message, UserInfo)


@server.tool()
def test_elicitation(message: str, response: Annotated[ElicitationResult[UserInfo], Resolve(_ask)]) -> str:
    """Asks the user (elicitation/create) and returns the answer."""
    content = response.data.model_dump() if response.action == "accept" else None
    return f"User response: action={response.action}, content={json.dumps(content)}"


class Defaults(BaseModel):
    name: str = "John Doe"
    age: int = 30
    score: float = 95.5
    status: Literal["active", "inactive", "pending"] = "active"
    verified: bool = True


def _ask_with_defaults() -> Elicit[Defaults]:
    return Elicit("Please review and update the form fields with defaults", Defaults)


@server.tool()
def test_elicitation_sep1034_defaults(
    response: Annotated[ElicitationResult[Defaults], Resolve(_ask_with_defaults)],
) -> str:
    """Asks the user for fields of every primitive type, each with a default (SEP-1034)."""
    content = response.data.model_dump() if response.action == "accept" else None
    return f"Elicitation completed: action={response.action}, content={json.dumps(content)}"


_OPTIONS = Literal["option1", "option2", "option3"]


class Enums(BaseModel):
    untitledSingle: _OPTIONS
    titledSingle: str = Field(
        json_schema_extra={
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ]
        }
    )
    legacyEnum: str = Field(
        json_schema_extra={"enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"]}
    )
    untitledMulti: list[_OPTIONS]
    titledMulti: list[str] = Field(
        json_schema_extra={
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            }
        }
    )


def _ask_enums() -> Elicit[Enums]:
    return Elicit("Please pick from each kind of list", Enums)


@server.tool()
def test_elicitation_sep1330_enums(response: Annotated[ElicitationResult[Enums], Resolve(_ask_enums)]) -> str:
    """Asks the user with every enum shape of SEP-1330 (untitled, titled, legacy enumNames, multi-select)."""
    content = response.data.model_dump() if response.action == "accept" else None
    return f"Elicitation completed: action={response.action}, content={json.dumps(content)}"


@server.tool(description="Tool with JSON Schema 2020-12 features")
def json_schema_2020_12_tool(name: str = "", address: dict[str, Any] | None = None) -> str:
    return "ok"


# The scenario checks that 2020-12 keywords survive the gateway: declare them exactly as it describes.
_schema_tool = server._tool_manager.get_tool("json_schema_2020_12_tool")
assert _schema_tool is not None
_schema_tool.parameters = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}


@server.resource("test://static-text", name="static-text", description="A static text resource", mime_type="text/plain")
def static_text() -> str:
    return "This is the content of the static text resource."


@server.resource("test://static-binary", name="static-binary", description="A static PNG", mime_type="image/png")
def static_binary() -> bytes:
    return base64.b64decode(PNG)


@server.resource("test://template/{id}/data", name="template", description="A template", mime_type="application/json")
def template(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@server.resource(
    "test://watched-resource", name="watched", description="A resource that changes", mime_type="text/plain"
)
def watched() -> str:
    return "watched content"


@server.completion()
async def complete(ref: Any, argument: Any, context: Any) -> Completion | None:
    if isinstance(ref, PromptReference) and ref.name == "test_prompt_with_arguments":
        return Completion(values=[f"{argument.value}-1", f"{argument.value}-2"], total=2, has_more=False)
    return None


# 2025-11-25 session state: the level last set and the URIs subscribed (for clients that pin that revision).
LEVELS: list[str] = []
SUBSCRIBED: set[str] = set()


async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
    LEVELS.append(params.level)
    return EmptyResult()


async def subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
    SUBSCRIBED.add(str(params.uri))
    return EmptyResult()


async def unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
    SUBSCRIBED.discard(str(params.uri))
    return EmptyResult()


_lowlevel = server._lowlevel_server
_lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
_lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
_lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


@server.tool()
def session_state() -> str:
    """The 2025-11-25 session state this server was told (levels set, URIs subscribed), as JSON."""
    return json.dumps({"levels": LEVELS, "subscribed": sorted(SUBSCRIBED)})


@server.prompt(description="A simple prompt")
def test_simple_prompt() -> str:
    return "This is a simple prompt for testing."


@server.prompt(description="A prompt with arguments")
def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@server.prompt(description="A prompt embedding a resource")
def test_prompt_with_embedded_resource(resourceUri: str) -> list[Any]:
    resource = TextResourceContents(
        uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
    )
    return [
        UserMessage(content=EmbeddedResource(type="resource", resource=resource)),
        UserMessage(content=TextContent(type="text", text="Please process the embedded resource above.")),
    ]


@server.prompt(description="A prompt with an image")
def test_prompt_with_image() -> list[Any]:
    return [
        UserMessage(content=ImageContent(type="image", data=PNG, mime_type="image/png")),
        UserMessage(content=TextContent(type="text", text="Please analyze the image above.")),
    ]


def main() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
