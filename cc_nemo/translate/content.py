"""A request's content blocks as OpenAI parts: texts, images, documents, tool results."""

from __future__ import annotations

from collections.abc import Mapping

from cc_nemo.settings.catalog import ModelSpec

IMAGE_OMITTED = "[image omitted]"
IMAGE_ATTACHED = "[image attached below]"
NO_TOOL_OUTPUT = "(no output)"


def content_blocks(content: object) -> list[Mapping]:
    """A string content equals one text block; non-object items are dropped."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [
            {"type": "text", "text": item} if isinstance(item, str) else item
            for item in content
            if isinstance(item, Mapping | str)
        ]
    return []


def block_texts(blocks: list[Mapping]) -> list[str]:
    """The non-empty texts of the text blocks, in order."""
    return [
        block["text"]
        for block in blocks
        if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]
    ]


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def image_part(block: Mapping, spec: ModelSpec) -> dict:
    """An `image_url` part, or a placeholder text for models without vision."""
    url = _image_url(block) if spec.vision else None
    if url is None:
        return text_part(IMAGE_OMITTED)
    return {"type": "image_url", "image_url": {"url": url}}


def _image_url(block: Mapping) -> str | None:
    source = block.get("source")
    if not isinstance(source, Mapping):
        return None
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        media_type = source.get("media_type") or "image/png"
        return f"data:{media_type};base64,{source['data']}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return source["url"]
    return None


def tool_result_content(block: Mapping, spec: ModelSpec) -> tuple[str, list[dict]]:
    """Tool messages carry text only (docs/wire.md, "Request translation", History 2): images
    become a pointer to the user message, and are returned to go there."""
    content = block.get("content")
    images: list[dict] = []
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        pieces: list[str] = []
        for item in content_blocks(content):
            if item.get("type") == "image":
                if spec.vision and _image_url(item):
                    pieces.append(IMAGE_ATTACHED)
                    images.append(image_part(item, spec))
                else:
                    pieces.append(IMAGE_OMITTED)
            else:
                rendered = rendered_text(item)
                if rendered:
                    pieces.append(rendered)
        text = "\n".join(pieces)
    else:
        text = ""
    if not text.strip():
        text = NO_TOOL_OUTPUT
    if block.get("is_error") is True:
        text = "Error: " + text
    return text, images


def rendered_text(block: Mapping) -> str:
    """Text for the block kinds that carry readable content; "" for everything else."""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return text if isinstance(text, str) else ""
    if kind == "tool_reference":
        return f"[tool loaded: {block.get('tool_name') or block.get('name') or 'unknown'}]"
    if kind == "search_result":
        header = " — ".join(
            str(block[key]) for key in ("title", "source") if isinstance(block.get(key), str)
        )
        body = "\n".join(block_texts(content_blocks(block.get("content"))))
        return "\n".join(piece for piece in (header, body) if piece)
    if kind == "document":
        return _document_text(block)
    return ""


def _document_text(block: Mapping) -> str:
    source = block.get("source")
    title = block.get("title") if isinstance(block.get("title"), str) else None
    body = ""
    if isinstance(source, Mapping):
        if source.get("type") == "text" and isinstance(source.get("data"), str):
            body = source["data"]
        elif source.get("type") == "content":
            body = "\n".join(block_texts(content_blocks(source.get("content"))))
        elif source.get("type") == "url" and isinstance(source.get("url"), str):
            body = f"[document: {source['url']}]"
        else:
            body = "[document omitted: this model cannot read PDF attachments]"
    header = f"Document: {title}" if title else ""
    return "\n".join(piece for piece in (header, body) if piece)
