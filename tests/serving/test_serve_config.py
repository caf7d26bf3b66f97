"""serve.yaml as Ray Serve reads it (its own ServeDeploySchema), and as `gender serve`
would deploy the same settings: loopback, no token in the file, a builder that builds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray import serve
from ray.serve.schema import ServeDeploySchema

from gender.errors import UserError
from serving.app import build
from serving.options import ServeOptions

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "serve.yaml").read_text())


def test_serve_yaml_passes_serves_own_schema(config):
    schema = ServeDeploySchema.model_validate(config)
    assert [a.name for a in schema.applications] == ["gender"]
    assert schema.applications[0].import_path == "serving.app:build"


def test_serve_yaml_listens_on_loopback_only_and_holds_no_token(config):
    assert config["http_options"]["host"] == "127.0.0.1"
    assert config["proxy_location"] == "HeadOnly"
    assert "token" not in config["applications"][0]["args"]
    assert "token" not in (REPO / "serve.yaml").read_text().split("#")[0].lower()


def test_serve_yaml_deploys_what_gender_serve_replicas_auto_would(config):
    app = config["applications"][0]
    args, (deployment,) = app["args"], app["deployments"]
    auto = deployment["autoscaling_config"]
    options = ServeOptions(**args, replicas="auto", max_replicas=auto["max_replicas"])
    assert {k: v for k, v in deployment.items() if k != "name"} == \
        {**options.deployment_options(max_replicas=1),
         "ray_actor_options": deployment["ray_actor_options"]}
    assert deployment["ray_actor_options"] == {
        "num_cpus": options.cpus_per_replica, "num_gpus": options.gpus_per_replica}


def test_the_builder_builds_from_the_files_args(config, tiny_model, monkeypatch):
    args = {**config["applications"][0]["args"], "model": str(tiny_model)}
    monkeypatch.setenv("GENDER_SERVE_TOKEN", "a-token-from-the-environment")
    assert isinstance(build(args), serve.Application)
    with pytest.raises(UserError, match="GENDER_SERVE_TOKEN"):
        build({**args, "token": "in-the-file"})
    with pytest.raises(UserError, match="unknown replica"):
        build({**args, "replica": 2})
    with pytest.raises(UserError, match="no model.pt there"):
        build({**args, "model": str(tiny_model / "missing")})
