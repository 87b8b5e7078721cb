"""What a request to the Hugging Face Hub needs before it is sent, and its failures as one line naming the fix.

The token is `--token`, else `HF_TOKEN`, else the one `hf auth login` saved. The checks that need no network
come in the order a user fixes them (`check_push`): the repository id, offline mode (`HF_HUB_OFFLINE=1`), a
token. `hub_errors` turns what the Hub's requests raise (no network, a token refused with 401 or without
write access with 403) into a `HubError`. `hf-fma push` (hf_fma.hub), `hf-fma export --repo_id`
(hf_fma.export) and training with `--push_to_hub` check with these before any work.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

from huggingface_hub import constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id

TOKENS_PAGE = "https://huggingface.co/settings/tokens"


class HubError(RuntimeError):
    """A push that cannot happen, in one line that names the fix; raised before any file is sent."""


class MissingTokenError(HubError):
    """No Hugging Face token: nothing can be pushed."""


def require_token(token: str | None = None) -> str:
    """The token to push with: `token`, else `HF_TOKEN`, else the one saved by `hf auth login`."""
    token = token or get_token()
    if not token:
        raise MissingTokenError(
            "no Hugging Face token: pushing needs a token with write access. Run `hf auth login`, set HF_TOKEN, "
            f"or pass --token (create one at {TOKENS_PAGE})"
        )
    return token


def check_repo_id(repo_id: str) -> str:
    """`repo_id` if the Hub would accept it as a repository id ("owner/name" or "name"), else HubError."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubError(
            f"{repo_id!r} is not a repository id: give owner/name (or name, for your own account) made of letters, "
            "digits, '-', '_' and '.', not starting or ending with '-' or '.', e.g. me/ast-fma-small"
        ) from None
    return repo_id


def check_online() -> None:
    """HubError when huggingface_hub is in offline mode: every request would fail."""
    if constants.is_offline_mode():
        raise HubError(
            "offline mode is on (HF_HUB_OFFLINE=1 or TRANSFORMERS_OFFLINE=1): unset it to push, e.g. "
            "`HF_HUB_OFFLINE=0 hf-fma push ...`"
        )


def check_push(repo_id: str, token: str | None = None) -> str:
    """Everything about a push that can be checked without the network, in the order a user fixes it:
    the repository id, offline mode, a token (returned). Recipes call it before training."""
    check_repo_id(repo_id)
    check_online()
    return require_token(token)


def _transport_errors() -> tuple[type[Exception], ...]:
    """The exceptions of a request that did not reach the Hub: huggingface_hub 2 sends requests with
    httpx2, 1.x with httpx (whichever is installed)."""
    errors = []
    for module_name in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            errors.append(importlib.import_module(module_name).TransportError)
    return tuple(errors)


@contextlib.contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """Turn what the Hub's requests raise into a one-line HubError naming the fix."""
    try:
        yield
    except _transport_errors() as error:
        raise HubError(
            f"cannot reach {constants.ENDPOINT} ({type(error).__name__}: {error}): check the network connection "
            "(and HTTPS_PROXY behind a proxy), then push again"
        ) from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            raise HubError(
                f"the Hub refused the token (401 Unauthorized): it is invalid or expired; run `hf auth login` with a "
                f"token from {TOKENS_PAGE}, or set HF_TOKEN"
            ) from None
        if status == 403:
            raise HubError(
                f"the token has no write access to {repo_id} (403 Forbidden): use a token with the write role (or "
                f"a fine-grained one allowed to write to {repo_id.split('/')[0]}'s repositories) from {TOKENS_PAGE}, "
                "then `hf auth login`"
            ) from None
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise HubError(f"the Hub refused the push of {repo_id} ({status}): {message}") from None


__all__ = [
    "HubError",
    "MissingTokenError",
    "check_online",
    "check_push",
    "check_repo_id",
    "hub_errors",
    "require_token",
]
