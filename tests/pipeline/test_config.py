from __future__ import annotations

from pathlib import Path

import pytest

from mmrag.pipeline.config import ConfigError, load_config


def test_defaults_are_offline_and_index_follows_env(tmp_path: Path) -> None:
    cfg = load_config(env={"MMRAG_INDEX": str(tmp_path / "idx"), "XDG_CONFIG_HOME": str(tmp_path)})
    assert cfg.index_dir == tmp_path / "idx"
    assert cfg.models.allow_downloads is False
    assert cfg.models.text_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert cfg.models.clip_model == "ViT-B-32" and cfg.models.clip_pretrained == "laion2b_s34b_b79k"


def test_file_then_env_then_explicit(tmp_path: Path) -> None:
    conf = tmp_path / "mmrag.toml"
    conf.write_text('index_dir = "/from/file"\n[models]\nllm_model = "file-model"\n[limits]\nmax_file_mb = 5\n')
    cfg = load_config(config_file=conf, env={"MMRAG_LLM_MODEL": "env-model"})
    assert cfg.index_dir == Path("/from/file")
    assert cfg.models.llm_model == "env-model"
    assert cfg.limits.max_file_mb == 5
    assert load_config(config_file=conf, index_dir=tmp_path / "cli", env={}).index_dir == tmp_path / "cli"


def test_unknown_setting_names_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text("[models]\ntext_modle = 'x'\n")
    with pytest.raises(ConfigError, match=r"bad\.toml \[models\]: unknown setting 'text_modle'"):
        load_config(config_file=conf, env={})


def test_wrong_type_is_reported(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text("[limits]\nmax_file_mb = 'big'\n")
    with pytest.raises(ConfigError, match="max_file_mb must be float"):
        load_config(config_file=conf, env={})


def test_missing_config_from_env_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MMRAG_CONFIG points to"):
        load_config(env={"MMRAG_CONFIG": str(tmp_path / "nope.toml")})


def test_server_section_reads_public_hosts_and_ingest_roots(tmp_path: Path) -> None:
    conf = tmp_path / "mmrag.toml"
    conf.write_text(
        '[server]\npublic_hosts = ["Files.Example.org", "[fe80::1]", "192.168.1.20"]\n'
        f'ingest_roots = ["{tmp_path / "drive"}"]\n'
    )
    server = load_config(config_file=conf, env={}).server
    assert server.public_hosts == ("files.example.org", "fe80::1", "192.168.1.20")
    assert server.ingest_roots == (tmp_path / "drive",)
    assert load_config(env={"XDG_CONFIG_HOME": str(tmp_path / "none")}).server.ingest_roots == ()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('public_hosts = ["http://files.example.org:8765/"]', "not a host name or address"),
        ('public_hosts = "files.example.org"', "public_hosts must be a list"),
        ('ingest_roots = ["drive/shared"]', "ingest_roots takes absolute folders"),
        ("allowed = 1", "unknown setting 'allowed'"),
    ],
)
def test_server_section_refuses_bad_values(tmp_path: Path, setting: str, message: str) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text(f"[server]\n{setting}\n")
    with pytest.raises(ConfigError, match=rf"bad\.toml \[server\]: .*{message}"):
        load_config(config_file=conf, env={})
