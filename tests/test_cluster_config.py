"""cluster.yaml (AWS) and cluster-local.yaml (on-premises) as this Ray's cluster launcher
reads them: its own schema and validator, after the same defaults `ray up` merges in; token
authentication on every node, the dashboard on 127.0.0.1, no credentials, GPU workers that
scale from zero, a setup that installs this project. No network, no cloud calls."""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.scripts.scripts import start as ray_start

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"aws": REPO / "cluster.yaml", "local": REPO / "cluster-local.yaml"}
SCHEMA = Path(ray.autoscaler.__file__).with_name("ray-schema.json")

# Things that must never be written into a cluster file: AWS keys (by name or by the shape
# of an access key id), private keys, a Ray token.
CREDENTIALS = [r"aws_access_key_id", r"aws_secret_access_key", r"aws_session_token",
               r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
               r"RAY_AUTH_TOKEN\s*="]


@pytest.fixture(params=sorted(CONFIGS), scope="module")
def name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def raw(name) -> dict:
    return yaml.safe_load(CONFIGS[name].read_text())


@pytest.fixture(scope="module")
def prepared(raw) -> dict:
    """The config as `ray up` sees it before it contacts the provider: Ray's defaults for
    the provider merged in, setup commands merged, per-type worker counts filled."""
    return prepare_config(copy.deepcopy(raw))


def _ray_starts(cfg: dict) -> list[tuple[str, list[str], list[str]]]:
    """(which list, words before `ray`, arguments after `ray start`) of every `ray start`."""
    found = []
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        for cmd in cfg[key]:
            for part in re.split(r";|&&|\|\|", cmd):
                words = shlex.split(part)
                found += [(key, words[:i], words[i + 2:]) for i in range(len(words) - 1)
                          if words[i:i + 2] == ["ray", "start"]]
    return found


def test_file_matches_rays_schema(raw):
    jsonschema.validate(raw, json.loads(SCHEMA.read_text()))


def test_ray_up_validation_passes(prepared):
    validate_config(prepared)  # Ray's own check: its schema plus node-type consistency


def test_misspelled_field_is_rejected(raw):
    bad = {**copy.deepcopy(raw), "idle_timeout_minute": 5}
    with pytest.raises(jsonschema.ValidationError, match="idle_timeout_minute"):
        validate_config(prepare_config(bad))


def test_head_and_every_worker_start_ray_once(prepared):
    keys = [key for key, _, _ in _ray_starts(prepared)]
    assert keys == ["head_start_ray_commands", "worker_start_ray_commands"]


def test_every_ray_start_uses_token_auth(prepared):
    for key, env, _ in _ray_starts(prepared):
        assert "RAY_AUTH_MODE=token" in env, f"{key}: `ray start` without RAY_AUTH_MODE=token"


def test_ray_start_flags_exist_in_this_ray(prepared):
    for _, _, args in _ray_starts(prepared):
        ray_start.make_context("ray start", list(args))  # NoSuchOption on a renamed flag


def test_dashboard_listens_on_localhost_only(prepared):
    (head_args,) = [args for key, _, args in _ray_starts(prepared)
                    if key == "head_start_ray_commands"]
    params = ray_start.make_context("ray start", list(head_args)).params
    assert params["head"] and params["dashboard_host"] == "127.0.0.1"
    commands = [c for k, v in prepared.items() if k.endswith("_commands") for c in v]
    assert not [c for c in commands if "0.0.0.0" in c]


def test_token_is_shipped_to_every_node(raw, prepared):
    assert raw["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert "chmod 600 ~/.ray/auth_token" in prepared[key]


def test_no_credentials_in_file(name):
    text = CONFIGS[name].read_text()
    for pattern in CREDENTIALS:
        assert not re.search(pattern, text, re.IGNORECASE), f"{CONFIGS[name].name}: {pattern}"


def test_setup_installs_this_project_on_every_node(raw, prepared):
    assert raw["file_mounts"]["~/gender-tune"] == "."
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert "pip install -e ~/gender-tune" in prepared[key], key


def test_aws_workers_have_one_gpu_and_scale_from_zero():
    cfg = prepare_config(yaml.safe_load(CONFIGS["aws"].read_text()))
    head = cfg["head_node_type"]
    workers = {k: v for k, v in cfg["available_node_types"].items() if k != head}
    assert workers and cfg["max_workers"] == 8
    for node_type, spec in workers.items():
        assert spec["resources"]["GPU"] == 1, node_type
        assert spec["min_workers"] == 0, node_type
    assert cfg["available_node_types"][head]["resources"]["GPU"] == 0
    assert cfg["provider"]["region"] == "us-west-2"
    assert cfg["provider"]["cache_stopped_nodes"] is False


def test_aws_nodes_share_one_ami():
    cfg = yaml.safe_load(CONFIGS["aws"].read_text())
    amis = {t["node_config"]["ImageId"] for t in cfg["available_node_types"].values()}
    assert len(amis) == 1 and re.fullmatch(r"ami-[0-9a-f]{8,17}", amis.pop())


def test_aws_head_can_launch_workers():
    # Our head_setup_commands replace Ray's defaults, which install boto3 for the autoscaler.
    cfg = yaml.safe_load(CONFIGS["aws"].read_text())
    assert any("boto3" in c for c in cfg["head_setup_commands"])
