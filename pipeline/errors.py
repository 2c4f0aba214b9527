"""Map the failures a person can fix to one clear line; anything else is a bug and keeps its traceback."""

from __future__ import annotations


def user_message(error: BaseException) -> str | None:
    from mmrag.pipeline.answer.llm import LlmError
    from mmrag.pipeline.evaluate import QuestionFileError
    from mmrag.pipeline.image_query import ImageQueryError
    from mmrag.pipeline.index import ModelMissing
    from mmrag.retrieval.store import IndexMismatch

    if isinstance(error, IndexMismatch | ModelMissing | QuestionFileError | ImageQueryError | LlmError):
        return str(error)
    if isinstance(error, FileNotFoundError):
        return f"{error.filename or error}: no such file or folder" if error.filename else str(error)
    if isinstance(error, PermissionError):
        return f"permission denied: {error.filename or error}"
    return None
