"""The one place that reads configuration files and the environment.

Precedence, lowest first: built-in defaults, the TOML file (``--config``, ``$MMRAG_CONFIG`` or
``~/.config/mmrag/config.toml``), environment variables, then command-line flags (applied by the CLI
with ``dataclasses.replace``). Everything downstream receives frozen dataclasses.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mmrag.ingest.base import ChunkingConfig
from mmrag.ingest.errors import MmragError


class ConfigError(MmragError):
    """A configuration value that cannot be used; the message names the file or variable."""


@dataclass(frozen=True, slots=True)
class ModelsConfig:
    """Which model plays each role, and where its weights may come from.

    A ``*_path`` is an explicit local file or folder and wins over everything. ``allow_downloads``
    lets a role fetch standard weights from their hub when nothing local is found; it is off by
    default so that nothing ever downloads behind a user's back (``mmrag models`` says what is missing).
    """

    text_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    text_path: str = ""
    text_runtime: str = "onnx-int8"  # or "torch": sentence-transformers in PyTorch, float32
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "laion2b_s34b_b79k"
    clip_path: str = ""
    speech_backend: str = "faster-whisper"
    speech_model: str = "tiny.en"
    speech_path: str = ""
    ocr_engine: str = "rapidocr"
    wordnet_path: str = ""  # WordNet 3.0 folder (data.noun) for photo labels in plain words; "" = /usr/share/wordnet
    slide_renderer: str = "auto"  # LibreOffice for slide pictures: "auto" (if installed), a path, or "none"
    # When slide pictures are made: "auto" = at ingest when an image-text encoder embeds them or a vision
    # LLM is sent them (llm_vision), else on first preview; "ingest"; or "preview" (LibreOffice's start-up
    # is 1-2 s per deck).
    slide_pictures: str = "auto"
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_backend: str = ""  # "" = ollama for ollama:// URLs, else openai (any OpenAI-compatible server)
    llm_vision: bool = False  # send cited images and frames to the model as image parts
    llm_timeout_s: float = 60.0  # past it, the answer falls back to the extractive one, with a note
    llm_max_tokens: int = 512  # the longest answer a model may write
    llm_sql_max_tokens: int = 200  # the longest SQL query it may write
    # drop (not only flag) generated sentences their cited evidence does not support; false keeps them, flagged
    llm_strict_citations: bool = True
    allow_downloads: bool = False


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Guards against files that would stall or exhaust an ingest run."""

    max_file_mb: float = 512.0
    file_seconds: float = 1800.0
    max_image_pixels: int = 120_000_000
    max_ocr_pages: int = 50  # pages of one PDF read by OCR when they have no readable text layer
    max_inflated_mb: float = 1024.0  # what one Office file (a ZIP) may inflate to, all its parts together
    max_zip_ratio: float = 200.0  # inflated / compressed size of a large part: over it, a ZIP bomb


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """How an ingest run treats the drive and shares the machine.

    ``follow_links_outside`` follows symbolic links whose target is outside every folder being
    ingested (off: such links are reported, so a link to ``/etc`` indexes nothing). ``nice`` lowers
    the CPU priority of the ingest process (``os.nice``) so that searches served meanwhile stay fast.
    ``workers`` above 1 reads files (parsing, OCR, speech) in that many worker processes while the ingest
    process embeds and writes (``pipeline.ingest_pool``); 1 reads them in the ingest process itself.
    ``broker`` (a ``redis://`` URL) hands files instead to ``mmrag ingest-worker`` processes on any
    machine that reaches it (``pipeline.ingest_celery``); ``broker_wait_s`` is how long a run waits for
    one to answer, and remote items up to ``broker_ship_mb`` travel in the task (larger ones are read here).
    """

    follow_links_outside: bool = False
    nice: int = 10
    workers: int = 1
    broker: str = ""  # MMRAG_INGEST_BROKER
    broker_wait_s: float = 15.0
    broker_ship_mb: float = 64.0


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Which vector store holds the chunks (``retrieval.stores.registry``) and where.

    ``path`` is the embedded store's folder ("" = ``chroma/`` inside the index folder).
    """

    kind: str = "chroma"
    path: str = ""
    url: str = ""  # chroma-http: the server, e.g. http://10.0.0.5:8000 (MMRAG_STORE_URL)
    tenant: str = "default_tenant"
    database: str = "default_database"
    collection: str = "mmrag_chunks"  # several indexes may share one server, each with its own collection
    auth_header: str = (
        ""  # chroma-http: "Name: value" sent with every request, for the proxy in front (MMRAG_STORE_AUTH)
    )
    # Rebuild the vector index into a fresh collection once chunks replaced or deleted since the last
    # rebuild reach this share of the chunks it holds (and at least rebuild_min_churn); 0 = never.
    rebuild_after_churn: float = 1.0
    rebuild_min_churn: int = 1000
    # Several machines (``pipeline.snapshots``): where the ingest node publishes snapshots of the keyword index,
    # table store and manifest, and the pictures: a folder every machine mounts, or s3://bucket/prefix
    # (MMRAG_SHARED). "" = one machine, nothing published.
    shared: str = ""
    shared_endpoint: str = ""  # s3: an S3-compatible server (MinIO, Ceph); "" = AWS
    shared_region: str = ""  # s3: "" = us-east-1; credentials from boto3's chain (AWS_ACCESS_KEY_ID, ~/.aws)
    # "writer": this machine ingests and publishes; "replica": mmrag serve reads the published snapshots
    # (with --index naming its own cache folder) and refuses ingest jobs
    role: str = "writer"
    publish_seconds: float = 60.0  # during a long ingest, publish at most this often (and at its end)
    poll_seconds: float = 3.0  # how often a replica looks for a newer snapshot
    keep_seconds: float = 600.0  # a replaced snapshot stays this long for replicas still copying it


LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
"""The names of this machine: a server bound to one of them is reachable from here only."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What ``mmrag serve`` answers to.

    ``public_hosts``: host names (or addresses) clients may use besides localhost and the bind address; a
    request naming any other host is refused (a DNS-rebinding page names its own). ``ingest_roots``:
    folders ``POST /api/ingest`` may index (and so serve); empty = the folders already in the index.
    """

    public_hosts: tuple[str, ...] = ()
    ingest_roots: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class PermissionsConfig:
    """Document permissions.

    ``enabled``: each file's readers are taken from the file system at ingest (POSIX mode bits and ACLs,
    every folder above it included) and every search, answer and listing shows a person only the files
    they may read. Off (the default) is single-user mode: whoever reaches the index sees all of it.
    ``tokens_file`` and ``trusted_header`` tell ``mmrag serve`` who is asking (``pipeline.http.identity``).
    """

    enabled: bool = False
    tokens_file: str = ""  # mmrag serve: a TOML file of [tokens] "TOKEN" = "USER" (one per person)
    trusted_header: str = ""  # mmrag serve: the header a reverse proxy sets to the signed-in user ("" = none)
    rules_file: str = ""  # glob -> readers rules that replace what the file system says (ingest.reader_rules)


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One named source of files (``[sources.NAME]``, see ``pipeline.sources``): ``mmrag ingest NAME``.

    ``url``: ``/srv/drive`` (local), ``s3://bucket/prefix`` (with ``endpoint`` for an S3-compatible
    server), ``https://dav.example.org/files`` (webdav) or ``smb://host[:port]/share/folder`` (smb).
    ``username`` and ``password`` (an S3 access key id and secret) may instead come from
    ``MMRAG_SOURCE_<NAME>_USERNAME`` and ``..._PASSWORD``; they are never logged or stored in the index.
    ``readers``: with document permissions on, who may read items the source gives no permissions for
    (none: nobody, failing closed). ``poll_seconds``: how often ``mmrag watch`` lists a remote source.
    ``grants`` (s3): read each object's ACL as its readers.
    """

    name: str
    kind: str
    url: str
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    endpoint: str = ""
    region: str = ""
    readers: tuple[str, ...] = ()
    poll_seconds: float = 300.0
    grants: bool = False  # s3: each object's ACL grants are its readers (one more request per object and sync)


SOURCE_KINDS = ("local", "s3", "webdav", "smb")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def _sources_section(data: object, where: str, env: Mapping[str, str]) -> tuple[SourceConfig, ...]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} [sources]: must hold one table per source ([sources.NAME] with kind and url)")
    out = []
    known = {f.name for f in fields(SourceConfig)} - {"name"}
    for name, body in data.items():
        here = f"{where} [sources.{name}]"
        if not _SOURCE_NAME.match(name):
            raise ConfigError(f"{here}: a source name is letters, digits, '-' and '_' (it prefixes its files' names)")
        if not isinstance(body, Mapping):
            raise ConfigError(f"{here}: must be a table with kind and url")
        unknown = set(body) - known
        if unknown:
            raise ConfigError(f"{here}: unknown setting {sorted(unknown)[0]!r} (known: {', '.join(sorted(known))})")
        kind, url = body.get("kind"), body.get("url")
        if kind not in SOURCE_KINDS:
            raise ConfigError(f"{here}: kind must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"{here}: url is required (where the files are)")
        values: dict[str, Any] = {}
        for key in ("username", "password", "endpoint", "region"):
            value = body.get(key, "")
            if not isinstance(value, str):
                raise ConfigError(f"{here}: {key} must be a string")
            values[key] = value
        for key in ("username", "password"):
            values[key] = env.get(f"MMRAG_SOURCE_{_env_name(name)}_{key.upper()}", values[key])
        poll = body.get("poll_seconds", 300.0)
        if not isinstance(poll, (int, float)) or poll <= 0:
            raise ConfigError(f"{here}: poll_seconds must be a number of seconds above 0")
        readers = tuple(_strings(body, "readers", here))
        grants = body.get("grants", False)
        if not isinstance(grants, bool):
            raise ConfigError(f"{here}: grants must be true or false")
        out.append(
            SourceConfig(name, kind, url.strip(), readers=readers, poll_seconds=float(poll), grants=grants, **values)
        )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Config:
    index_dir: Path
    models: ModelsConfig = field(default_factory=ModelsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    permissions: PermissionsConfig = field(default_factory=PermissionsConfig)
    sources: tuple[SourceConfig, ...] = ()
    batch_size: int = 64

    def source(self, name: str) -> SourceConfig | None:
        """The configured source of this name, if any."""
        return next((s for s in self.sources if s.name == name), None)


FAULT_ENV = "MMRAG_FAULT"


def fault_point(name: str) -> None:
    """Die here, as a SIGKILL would (``os._exit(137)``: no cleanup, no flush), when ``$MMRAG_FAULT`` is ``name``.

    The crash-safety tests set it to prove that an index survives a kill at each named point
    (``reindex-after-mark``, ``reindex-after-manifest``, ``reindex-after-drop``, ``reindex-after-media``,
    ``ingest-after-store``, ``sync-after-item``, ``move-after-delete``); nothing else does.
    """
    if os.environ.get(FAULT_ENV) == name:
        os._exit(137)


BROKER_SCHEMES = ("redis://", "rediss://", "redis+socket://")


def check_broker(url: str, setting: str) -> None:
    """Refuse a broker URL that is no Redis URL (the distributed ingest speaks Redis only)."""
    if url and not url.startswith(BROKER_SCHEMES):
        raise ConfigError(
            f"{setting} must be a Redis URL such as redis://10.0.0.7:6379/0 (or rediss://, redis+socket://), "
            f"got {redact_url(url)!r}"
        )


def redact_url(url: str) -> str:
    """``url`` with its password, if any, shown as ``***`` (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"


def default_index_dir(env: Mapping[str, str]) -> Path:
    if env.get("MMRAG_INDEX"):
        return Path(env["MMRAG_INDEX"]).expanduser()
    data_home = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "mmrag" / "index"


def _config_file(explicit: Path | None, env: Mapping[str, str]) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return explicit
    if env.get("MMRAG_CONFIG"):
        path = Path(env["MMRAG_CONFIG"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"MMRAG_CONFIG points to {path}, which does not exist")
        return path
    home = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    path = home / "mmrag" / "config.toml"
    return path if path.is_file() else None


def _section(cls: type[Any], data: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r} (known: {', '.join(sorted(known))})")
        default = getattr(cls(), key) if key != "index_dir" else None
        if (
            default is not None
            and not isinstance(value, type(default))
            and not (isinstance(default, float) and isinstance(value, int))
        ):
            raise ConfigError(f"{where}: {key} must be {type(default).__name__}, got {value!r}")
        values[key] = value
    return cls(**values)


_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\.?$")


def _strings(data: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: {key} must be a list of non-empty strings, got {value!r}")
    return [v.strip() for v in value]


def server_host(name: str, where: str) -> str:
    """A public host name as the Host header carries it, lower-cased, without brackets; ``ConfigError`` if not one."""
    bare = name.strip("[]")
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if not _HOST_NAME.match(name):
        raise ConfigError(
            f"{where}: {name!r} is not a host name or address (give the name alone, like files.example.org "
            "or 192.168.1.20: no scheme, port or path)"
        )
    return name.lower().rstrip(".")


def _server_section(data: object, where: str) -> ServerConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a table ([server] with public_hosts and ingest_roots)")
    unknown = set(data) - {f.name for f in fields(ServerConfig)}
    if unknown:
        raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r} (known: ingest_roots, public_hosts)")
    hosts = tuple(server_host(h, where) for h in _strings(data, "public_hosts", where))
    roots = tuple(Path(r).expanduser() for r in _strings(data, "ingest_roots", where))
    for root in roots:
        if not root.is_absolute():
            raise ConfigError(f"{where}: ingest_roots takes absolute folders, got {str(root)!r}")
    return ServerConfig(public_hosts=hosts, ingest_roots=roots)


ENV_MODELS = {
    "MMRAG_TEXT_MODEL_PATH": "text_path",
    "MMRAG_TEXT_RUNTIME": "text_runtime",
    "MMRAG_CLIP_WEIGHTS": "clip_path",
    "MMRAG_SPEECH_MODEL_PATH": "speech_path",
    "MMRAG_SPEECH_BACKEND": "speech_backend",
    "MMRAG_LLM_BASE_URL": "llm_base_url",
    "MMRAG_LLM_MODEL": "llm_model",
    "MMRAG_LLM_API_KEY": "llm_api_key",
    "MMRAG_LLM_BACKEND": "llm_backend",
}


def load_config(
    config_file: Path | None = None,
    index_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Build the configuration from defaults, the config file and the environment."""
    env = os.environ if env is None else env
    path = _config_file(config_file, env)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid TOML ({e})") from e
    where = str(path) if path else "config"
    models = _section(ModelsConfig, data.pop("models", {}), f"{where} [models]")
    limits = _section(LimitsConfig, data.pop("limits", {}), f"{where} [limits]")
    chunking = _section(ChunkingConfig, data.pop("chunking", {}), f"{where} [chunking]")
    store = _section(StoreConfig, data.pop("store", {}), f"{where} [store]")
    server = _server_section(data.pop("server", {}), f"{where} [server]")
    ingest = _section(IngestConfig, data.pop("ingest", {}), f"{where} [ingest]")
    if ingest.workers < 1:
        raise ConfigError(f"{where}: [ingest] workers must be at least 1, got {ingest.workers!r}")
    if env.get("MMRAG_INGEST_BROKER"):
        ingest = replace(ingest, broker=env["MMRAG_INGEST_BROKER"])
    check_broker(ingest.broker, f"{where}: [ingest] broker (or MMRAG_INGEST_BROKER)")
    if ingest.broker_wait_s <= 0 or ingest.broker_ship_mb < 0:
        raise ConfigError(f"{where}: [ingest] broker_wait_s must be more than 0 and broker_ship_mb at least 0")
    permissions = _section(PermissionsConfig, data.pop("permissions", {}), f"{where} [permissions]")
    sources = _sources_section(data.pop("sources", {}), where, env)
    top_index = data.pop("index_dir", None)
    batch_size = data.pop("batch_size", 64)
    if data:
        raise ConfigError(f"{where}: unknown settings {sorted(data)}")

    overrides: dict[str, Any] = {attr: env[var] for var, attr in ENV_MODELS.items() if env.get(var)}
    if env.get("OPENAI_API_KEY") and "llm_api_key" not in overrides and not models.llm_api_key:
        overrides["llm_api_key"] = env["OPENAI_API_KEY"]
    if env.get("MMRAG_ALLOW_DOWNLOADS"):
        overrides["allow_downloads"] = env["MMRAG_ALLOW_DOWNLOADS"].lower() in ("1", "true", "yes")
    models = replace(models, **overrides)
    if env.get("MMRAG_STORE"):
        store = replace(store, kind=env["MMRAG_STORE"])
    if env.get("MMRAG_STORE_URL"):
        store = replace(store, url=env["MMRAG_STORE_URL"])
    if env.get("MMRAG_STORE_AUTH"):
        store = replace(store, auth_header=env["MMRAG_STORE_AUTH"])
    if env.get("MMRAG_SHARED"):
        store = replace(store, shared=env["MMRAG_SHARED"])
    if env.get("MMRAG_ROLE"):
        store = replace(store, role=env["MMRAG_ROLE"])
    if env.get("MMRAG_PERMISSIONS"):
        permissions = replace(permissions, enabled=env["MMRAG_PERMISSIONS"].lower() in ("1", "true", "yes"))
    _check_choices(models, store, where)

    if index_dir is None:
        index_dir = Path(top_index).expanduser() if top_index and not env.get("MMRAG_INDEX") else None
    return Config(
        index_dir=(index_dir or default_index_dir(env)).expanduser(),
        models=models,
        limits=limits,
        chunking=chunking,
        store=store,
        server=server,
        ingest=ingest,
        permissions=permissions,
        sources=sources,
        batch_size=int(batch_size),
    )


SLIDE_PICTURE_MODES = ("auto", "ingest", "preview")
SPEECH_BACKENDS = ("faster-whisper", "openai-whisper")
OCR_ENGINES = ("rapidocr", "tesseract", "none")
STORE_ROLES = ("writer", "replica")


def _check_shared(store: StoreConfig, where: str) -> None:
    """A replica needs a published location and a vector store every machine reaches (a server)."""
    for name in ("publish_seconds", "poll_seconds", "keep_seconds"):
        if getattr(store, name) <= 0:
            raise ConfigError(f"{where}: [store] {name} must be more than 0 seconds, got {getattr(store, name)!r}")
    if store.shared.startswith("s3://") and not store.shared[5:].strip("/"):
        raise ConfigError(f"{where}: [store] shared must name a bucket: s3://bucket/prefix")
    if store.role != "replica":
        return
    if not store.shared:
        raise ConfigError(
            f'{where}: [store] role = "replica" needs [store] shared (or MMRAG_SHARED): the folder or s3://bucket/prefix '
            "the ingest node publishes to"
        )
    if store.kind == "chroma":
        raise ConfigError(
            f'{where}: [store] role = "replica" needs a vector store every machine reaches: set [store] kind = '
            '"chroma-http" and url (the embedded store lives in one machine\'s index folder)'
        )


def _check_choices(models: ModelsConfig, store: StoreConfig, where: str) -> None:
    """Refuse a setting that names no known option now, not on first use (the message lists the options)."""
    from mmrag.pipeline.answer.llm import BACKENDS
    from mmrag.retrieval.embed import TEXT_RUNTIMES
    from mmrag.retrieval.stores.registry import STORES

    choices = (
        ("[models] text_runtime (or MMRAG_TEXT_RUNTIME)", models.text_runtime, TEXT_RUNTIMES),
        ("[models] slide_pictures", models.slide_pictures, SLIDE_PICTURE_MODES),
        ("[models] speech_backend (or MMRAG_SPEECH_BACKEND)", models.speech_backend, SPEECH_BACKENDS),
        ("[models] ocr_engine", models.ocr_engine, OCR_ENGINES),
        ("[models] llm_backend (or MMRAG_LLM_BACKEND)", models.llm_backend.strip().lower(), ("", *BACKENDS)),
        ("[store] kind (or MMRAG_STORE)", store.kind, tuple(STORES)),
        ("[store] role (or MMRAG_ROLE)", store.role, STORE_ROLES),
    )
    for setting, value, known in choices:
        if value not in known:
            options = ", ".join(repr(k) for k in known if k)
            raise ConfigError(f"{where}: {setting} must be one of {options}, got {value!r}")
    if models.llm_max_tokens < 16 or models.llm_sql_max_tokens < 16:
        raise ConfigError(f"{where}: [models] llm_max_tokens and llm_sql_max_tokens must be at least 16")
    _check_shared(store, where)
    if models.llm_timeout_s <= 0:
        raise ConfigError(f"{where}: [models] llm_timeout_s must be more than 0 seconds, got {models.llm_timeout_s!r}")
