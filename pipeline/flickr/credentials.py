"""Flickr API keys: where they come from (Secret Manager, a file on any Beam filesystem, the
environment) and how they are kept out of logs, reprs and error messages."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import google_crc32c

from pipeline.io.files import read_bytes
from pipeline.io.json_keys import KeyTwice, each_key_once

SECRET_SCHEME = "sm://"

class CredentialsError(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    key: str
    secret: str

    def __repr__(self) -> str:  # never let a key reach a log or an exception message
        return "Credentials(key=***, secret=***)"

    __str__ = __repr__


def parse_keys(data: object) -> tuple[Credentials, ...]:
    """One key {"key": …, "secret": …}, several {"keys": [{…}, …]}, or a bare list of them."""
    entries = data.get("keys", [data]) if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ValueError("no keys")
    for entry in entries:
        if not isinstance(entry, dict) or not {"key", "secret"} <= set(entry):  # names no field: one may be a key
            raise ValueError('each key needs a "key" and a "secret" field')
    # Strings only: str() made {"key": null} the key "None" and a number lost its leading zeros; stripped as the
    # environment's are (a key pasted with its line break was refused by Flickr as an invalid key, unexplained).
    if any(not isinstance(entry[field], str) for entry in entries for field in ("key", "secret")):
        raise ValueError('"key" and "secret" must be strings')
    keys = tuple(Credentials(entry["key"].strip(), entry["secret"].strip()) for entry in entries)
    if any(not (k.key and k.secret) for k in keys) or len({k.key for k in keys}) != len(keys):
        raise ValueError("empty or repeated key")
    return keys


def load_credentials(path: str | None = None, environ: dict[str, str] | None = None) -> tuple[Credentials, ...]:
    """The job's API keys from a JSON document (see `parse_keys`): a Secret Manager secret
    (sm://projects/P/secrets/S[/versions/V]), a file on any Beam filesystem (local, gs://), or
    else FLICKR_API_KEY / FLICKR_API_SECRET (several keys as comma-separated lists of equal
    length). Error messages name the problem, never a key."""
    if path and path.startswith(SECRET_SCHEME):
        try:
            return parse_keys(_document(read_secret(path.removeprefix(SECRET_SCHEME))))
        except KeyTwice as err:
            raise CredentialsError(f"the secret {path} is not a credentials document: {_twice(err)}") from None
        except (ValueError, KeyError, TypeError) as err:
            raise CredentialsError(f"the secret {path} is not a credentials document: {type(err).__name__}") from None
    if path:
        try:
            return parse_keys(_document(read_bytes(path)))
        except KeyTwice as err:
            raise CredentialsError(f"cannot read Flickr credentials from {_shown_path(path)}: {_twice(err)}") from None
        except ValueError as err:  # our own messages name fields, never values; the path is shown as elsewhere
            # (a key pasted as the path with a stray NUL byte failed the read with "embedded null byte", and showed it)
            raise CredentialsError(f"cannot read Flickr credentials from {_shown_path(path)}: {err}") from None
        except FileNotFoundError:
            raise CredentialsError(f"cannot read Flickr credentials from {_shown_path(path)}: no such file "
                                   f"(FileNotFoundError); {CREDENTIALS_HINT}") from None
        except (OSError, KeyError, TypeError) as err:
            raise CredentialsError(f"cannot read Flickr credentials from {_shown_path(path)}: "
                                   f"{type(err).__name__}") from None
    env = os.environ if environ is None else environ
    keys = [k.strip() for k in env.get("FLICKR_API_KEY", "").split(",")]
    secrets = [s.strip() for s in env.get("FLICKR_API_SECRET", "").split(",")]
    if not all(keys) or not all(secrets) or len(keys) != len(secrets):
        raise CredentialsError("no Flickr credentials: set FLICKR_API_KEY and FLICKR_API_SECRET (equally many, "
                               "comma-separated) or give --flickr_credentials a JSON file")
    try:
        return parse_keys([{"key": k, "secret": s} for k, s in zip(keys, secrets, strict=True)])
    except ValueError:
        raise CredentialsError("FLICKR_API_KEY lists the same key twice") from None


def _document(raw: bytes) -> object:
    """The JSON document, a field given twice in one object refused: Python keeps its last copy, an editor or
    another reader of the secret may show the first (a key replaced by pasting the new one above the old)."""
    return json.loads(raw, object_pairs_hook=each_key_once)


# The fields a credentials document has: a field given twice is named only if it is one of them (a document written
# as {key: secret} has fields that are keys).
_FIELDS = frozenset({'"key"', '"secret"', '"keys"'})


def _twice(err: KeyTwice) -> str:
    field = f"the field {err}" if str(err) in _FIELDS else "a field"
    return f"{field} is given twice in one object (keep one)"


CREDENTIALS_HINT = ("--flickr_credentials takes the path of a JSON file (local or gs://) or sm://projects/P/secrets/S, "
                    "never a key itself: give a key in FLICKR_API_KEY and FLICKR_API_SECRET")


def _shown_path(path: str) -> str:
    """`path` as an error message may show it: a value naming no file that does not look like a path may be a key
    given to --flickr_credentials by mistake (stderr ends in CI and worker logs), so it is withheld."""
    looks_like_path = any(mark in path for mark in ("/", "\\", ".json", ".txt")) or path.startswith("~")
    return path[:200] if looks_like_path else "the value given (not shown: it names no file and may be a key)"


def fingerprint(credentials: Credentials) -> str:
    """Names a key inside this process (pacer sharing) without holding or showing the key itself."""
    return hashlib.sha256(credentials.key.encode()).hexdigest()[:16]



def impersonated_credentials() -> Any | None:
    """The credentials Beam's own Google Cloud clients hold in this process where the run impersonates a service
    account (--impersonate_service_account, which run and refresh hand to Beam's filesystems as they parse their
    options), else None (the client's application-default credentials). The launch reads an sm:// secret to check the
    key before the job: read as the user's own credentials, a user who may only act as that account was refused
    (PermissionDenied) where the job would have read it. On a worker Beam drops the option with the pickled options
    (its own rule): the worker's account reads it, as before."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    options = FileSystems._pipeline_options  # Beam's own record of the run's options; None before a launch sets it
    if options is None or not options.view_as(GoogleCloudOptions).impersonate_service_account:
        return None
    from apache_beam.internal.gcp import auth

    held = auth.get_service_credentials(options)  # built once for the process, as for Beam's storage client
    return held.get_google_auth_credentials() if held is not None else None


def read_secret(name: str) -> bytes:
    """A Secret Manager secret's payload ("projects/P/secrets/S[/versions/V]", latest by default),
    through the real client: gRPC with the worker's credentials (the impersonated account's at a launch given one:
    `impersonated_credentials`), or REST to SECRET_MANAGER_EMULATOR_HOST when that is set (tests). The payload's
    CRC32C is checked."""
    from google.api_core import exceptions
    from google.cloud import secretmanager

    if "/versions/" not in name:
        name = f"{name}/versions/latest"
    endpoint = os.environ.get("SECRET_MANAGER_EMULATOR_HOST")
    credentials = impersonated_credentials()
    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        client = secretmanager.SecretManagerServiceClient(
            transport="rest", credentials=credentials or AnonymousCredentials(),
            client_options={"api_endpoint": endpoint})
    else:
        client = secretmanager.SecretManagerServiceClient(credentials=credentials)
    try:
        payload = client.access_secret_version(name=name).payload
    except exceptions.GoogleAPICallError as err:
        raise CredentialsError(f"cannot read the Flickr credentials secret {name}: {type(err).__name__}") from None
    if payload.data_crc32c and google_crc32c.value(payload.data) != payload.data_crc32c:
        raise CredentialsError(f"the secret {name} arrived corrupted (CRC32C mismatch)")
    return payload.data
