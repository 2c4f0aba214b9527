"""An S3 bucket, or a prefix in one, as a named source: ``kind = "s3"``.

``url = "s3://bucket/prefix"`` (the prefix is optional), ``endpoint`` for an S3-compatible server
(MinIO, Ceph, a NAS; empty means AWS), ``region`` (default ``us-east-1``), ``username`` and
``password`` as the access key id and secret (both empty: boto3's own credential chain, environment,
``~/.aws`` or an instance role). The ETag is the version token: an object is downloaded again only
when it changes. Keys ending in ``/`` (folder markers) and hidden or system names, in the file name
or in any folder above it, are left out as a folder walk leaves them out.

boto3 is imported when the first bucket is listed, not with this package. botocore sends only the
requests themselves (no usage reports); the timeouts and the two attempts below make a dead server
fail the run in seconds. With ``grants = true`` each object's ACL grants are its readers (one more
request per object and sync); bucket policies are not read, so with document permissions on, a bucket
shared by policy needs the source's ``readers`` (or a rules file) instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mmrag.ingest.detect import is_hidden_or_system
from mmrag.ingest.permissions import PUBLIC
from mmrag.pipeline.config import SourceConfig
from mmrag.pipeline.sources import Item, SourceError

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
CONNECT_SECONDS = 5
READ_SECONDS = 20
ATTEMPTS = 2  # the first try and one retry: a restarting server gets a second chance, a dead one fails fast
DOWNLOAD_BLOCK = 1 << 20

_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "ExpiredToken"}
_GONE = {"NoSuchKey", "404", "NotFound"}


def parse_url(name: str, url: str) -> tuple[str, str]:
    """The bucket and the key prefix (``""`` or ending in ``/``) of ``s3://bucket/prefix``."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise SourceError(f"source {name!r}: url must look like s3://bucket/prefix, got {url!r}")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def _skipped(key: str, path: str) -> bool:
    """Whether a key (``path`` below the prefix) is no file a folder walk would find."""
    if not path or path.endswith("/"):
        return True  # the prefix itself, or a folder marker
    segments = path.split("/")
    if any(s in ("", ".", "..") for s in segments):
        log.warning("skipped S3 key %r: an empty, '.' or '..' segment names no file in a folder", key)
        return True
    return any(is_hidden_or_system(s) for s in segments)


class S3Source:
    def __init__(self, config: SourceConfig) -> None:
        self.name = config.name
        self.bucket, self.prefix = parse_url(config.name, config.url)
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        if bool(config.username) != bool(config.password):
            raise SourceError(
                f"source {self.name!r}: set both username (the access key id) and password (the secret key), "
                "or neither to use boto3's credential chain"
            )
        self._config = config
        self._client: Any = None
        self._failures: tuple[type[Exception], ...] = ()  # botocore's, urllib3's and socket errors, once imported

    def _s3(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def client(self) -> Any:
        """The boto3 client (connected on first use); also used by the shared location (``pipeline.shared``)."""
        return self._s3()

    def failures(self) -> tuple[type[Exception], ...]:
        """The exceptions a request may raise (botocore's, urllib3's, socket errors), once connected."""
        self._s3()
        return self._failures

    def error(self, e: Exception, doing: str) -> SourceError:
        """``e`` in words, naming what failed (no credential in it)."""
        return self._error(e, doing)

    def _connect(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError, ClientError
            from urllib3.exceptions import HTTPError
        except ImportError as e:
            raise SourceError(f"source {self.name!r}: the s3 source needs boto3 (pip install boto3)") from e
        self._failures = (BotoCoreError, ClientError, HTTPError, OSError)
        c = self._config
        settings = Config(
            connect_timeout=CONNECT_SECONDS,
            read_timeout=READ_SECONDS,
            retries={"max_attempts": ATTEMPTS, "mode": "standard"},
            s3={"addressing_style": "path"} if c.endpoint else None,  # few S3-compatible servers have bucket hostnames
        )
        try:
            session = boto3.session.Session(
                aws_access_key_id=c.username or None,
                aws_secret_access_key=c.password or None,
                region_name=c.region or DEFAULT_REGION,
            )
            return session.client("s3", endpoint_url=c.endpoint or None, config=settings)
        except (BotoCoreError, ValueError) as e:  # a bad endpoint URL or a broken ~/.aws profile
            raise self._error(e, "cannot connect") from e

    def items(self) -> Iterator[Item]:
        pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        try:
            for page in pages:
                for entry in page.get("Contents", ()):
                    key = entry["Key"]
                    path = key[len(self.prefix) :]
                    if _skipped(key, path):
                        continue
                    etag = str(entry.get("ETag", "")).strip('"')
                    readers = self._grants(key) if self._config.grants else None
                    modified = entry["LastModified"].timestamp()
                    # a single-part upload's ETag is the MD5 of its bytes ("-" marks a multipart one)
                    yield Item(path, int(entry["Size"]), etag, modified, readers, content="-" not in etag)
        except self._failures as e:
            raise self._error(e, f"cannot list {self.location}") from e

    def _grants(self, key: str) -> tuple[str, ...] | None:
        """Who the object's ACL lets read it: ``PUBLIC`` for the AllUsers and AuthenticatedUsers groups,
        ``user:DISPLAYNAME`` for an account with a display name, ``s3:ID`` (nobody here) for one without;
        None when the ACL cannot be read (the source's ``readers`` then apply, or nobody)."""
        try:
            acl = self._s3().get_object_acl(Bucket=self.bucket, Key=key)
        except self._failures as e:
            log.warning("source %r: cannot read the grants of %s: %s", self.name, key, self._error(e, "grants"))
            return None
        readers: set[str] = set()
        for grant in acl.get("Grants", ()):
            if grant.get("Permission") not in ("READ", "FULL_CONTROL"):
                continue
            grantee = grant.get("Grantee", {})
            kind = grantee.get("Type")
            if kind == "Group" and str(grantee.get("URI", "")).endswith(
                ("/global/AllUsers", "/global/AuthenticatedUsers")
            ):
                readers.add(PUBLIC)
            elif kind == "CanonicalUser":
                owner = acl.get("Owner", {})  # a grant may name the owner by id only
                same = grantee.get("ID") and grantee.get("ID") == owner.get("ID")
                name = grantee.get("DisplayName") or (owner.get("DisplayName") if same else None)
                readers.add(f"user:{name}" if name else f"s3:{grantee.get('ID', '')}")
            elif kind == "AmazonCustomerByEmail":
                readers.add(f"s3:{grantee.get('EmailAddress', '')}")
        return tuple(sorted(readers))

    def fetch(self, item: Item, dest: Path) -> None:
        client = self._s3()
        try:
            body = client.get_object(Bucket=self.bucket, Key=self.prefix + item.path)["Body"]
        except self._failures as e:
            raise self._error(e, f"cannot read {item.path}") from e
        try:
            with dest.open("wb") as out:
                while block := self._read(body, item):
                    out.write(block)
        except OSError as e:
            raise SourceError(f"source {self.name!r}: cannot write {item.path} to {dest} ({e.strerror or e})") from e
        finally:
            body.close()

    def _read(self, body: Any, item: Item) -> bytes:
        try:
            block: bytes = body.read(DOWNLOAD_BLOCK)
        except self._failures as e:
            raise self._error(e, f"cannot read {item.path}") from e
        return block

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _error(self, e: Exception, doing: str) -> SourceError:
        """A ``SourceError`` naming the source and what failed, in words, without any credential."""
        code = _code(e)
        kind = type(e).__name__
        if code == "NoSuchBucket":
            why = f"bucket {self.bucket!r} does not exist"
        elif code in _DENIED:
            why = f"access denied ({code}: check the access key id and secret and the bucket's policy)"
        elif code in _GONE:
            why = "the object is gone (deleted since the listing)"
        elif code == "InvalidObjectState":
            why = "the object is archived (restore it from Glacier first)"
        elif code:
            why = f"the server said {code}"
        elif kind in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
            why = f"cannot reach {self._config.endpoint or 'AWS S3'} (is the server running?)"
        elif kind in ("ReadTimeoutError", "ResponseStreamingError", "IncompleteReadError"):
            why = f"the connection broke off ({kind})"
        elif kind in ("NoCredentialsError", "PartialCredentialsError"):
            why = "no credentials (set username and password, or configure boto3's credential chain)"
        else:
            why = f"{kind}: {e}"
        message = f"source {self.name!r}: {doing}: {why}"
        if self._config.password:  # a server may echo what it was sent
            message = message.replace(self._config.password, "***")
        return SourceError(message)


def _code(e: Exception) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
