"""Operations -> commands, for given facts (the way pyinfra tests its own operations)."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
from pyinfra.api.hiddenvalue import HiddenValue

from isaac_deploy.facts.files import FileDigest, FileSnapshot
from isaac_deploy.facts.images import BuildInputs, LocalImage
from isaac_deploy.facts.toolkit import Toolkit, WorkstationToolkit
from isaac_deploy.model.images import ImageBuild, inputs_digest
from isaac_deploy.operations import docker as docker_ops
from isaac_deploy.operations import files as file_ops
from isaac_deploy.render.managed import stamp
from tests.helpers import MissingFact, fixture_lines, run_op

BACK = {
    "debian12-dead-docker-host.json": "unset DOCKER_HOST",
    "debian12-dead-context.json": "run `docker context use default`",
}

ENV = "/p/docker/.env.ext"
TMP = "/p/docker/..env.ext.isaac-deploy.tmp"


def write_commands(path: str, tmp: str, content: str, mode: str) -> list:
    return [
        f"rm -f {tmp} && ( umask 077 && : > {tmp} )",
        ("upload", tmp, content),
        f"chmod {mode} {tmp} && mv -f {tmp} {path}",
    ]


def snapshot(text: str, mode: int = 0o600) -> FileSnapshot:
    return FileSnapshot(mode=mode, uid=1000, lines=text.rstrip("\n").split("\n"))


class TestManagedFile:
    def test_absent_file_is_written_atomically_through_a_0600_temp_file(self):
        commands, _ = run_op(
            file_ops.managed_file,
            {"FileWithMode": {f"path={ENV}": None}},
            path=ENV,
            content="A='1'\n",
        )
        assert commands == write_commands(ENV, TMP, stamp("A='1'\n"), "600")

    def test_identical_file_is_a_noop(self):
        commands, host = run_op(
            file_ops.managed_file,
            {"FileWithMode": {f"path={ENV}": snapshot(stamp("A='1'\n"))}},
            path=ENV,
            content="A='1'\n",
        )
        assert commands == [] and host.noops == [f"{ENV} is up to date"]

    def test_identical_file_with_loose_mode_is_tightened(self):
        facts = {"FileWithMode": {f"path={ENV}": snapshot(stamp("A='1'\n"), mode=0o644)}}
        commands, _ = run_op(file_ops.managed_file, facts, path=ENV, content="A='1'\n")
        assert commands == [f"chmod 600 {ENV}"]

    def test_pristine_file_with_new_content_is_rewritten(self):
        facts = {"FileWithMode": {f"path={ENV}": snapshot(stamp("A='1'\n"))}}
        commands, _ = run_op(file_ops.managed_file, facts, path=ENV, content="A='2'\n")
        assert commands == write_commands(ENV, TMP, stamp("A='2'\n"), "600")

    def test_edited_file_is_kept_and_the_diff_shown(self, caplog):
        edited = stamp("A='1'\n").replace("A='1'", "A='mine'")
        facts = {"FileWithMode": {f"path={ENV}": snapshot(edited)}}
        commands, _ = run_op(file_ops.managed_file, facts, path=ENV, content="A='2'\n")
        assert commands == []
        assert "kept /p/docker/.env.ext: it was edited by hand" in caplog.text
        assert "A='mine'" in caplog.text and "A='2'" in caplog.text

    def test_edited_file_with_loose_mode_is_kept_but_tightened(self):
        facts = {"FileWithMode": {f"path={ENV}": snapshot("MY='own'\n", mode=0o664)}}
        commands, _ = run_op(file_ops.managed_file, facts, path=ENV, content="A='2'\n")
        assert commands == [f"chmod 600 {ENV}"]

    def test_edited_file_is_replaced_when_told_keeping_a_copy(self):
        facts = {"FileWithMode": {f"path={ENV}": snapshot("MY='own'\n")}}
        commands, _ = run_op(
            file_ops.managed_file, facts, path=ENV, content="A='2'\n", overwrite_edited=True
        )
        assert commands == [
            f"cp -p {ENV} {ENV}.edited",
            *write_commands(ENV, TMP, stamp("A='2'\n"), "600"),
        ]

    def test_paths_are_quoted(self):
        path = "/home/a b/it's/.env"
        commands, _ = run_op(
            file_ops.managed_file,
            {"FileWithMode": {f"path={path}": None}},
            path=path,
            content="x\n",
        )
        assert (
            commands[0]
            == "rm -f '/home/a b/it'\"'\"'s/..env.isaac-deploy.tmp' && ( umask 077 && : > '/home/a b/it'\"'\"'s/..env.isaac-deploy.tmp' )"
        )

    def test_a_fact_asked_about_another_path_fails_the_test(self):
        """Fixtures are keyed by the fact's arguments: no answer meant for another file."""
        other = {"FileWithMode": {"path=/p/docker/.env.other": None}}
        with pytest.raises(
            MissingFact, match=r"fact FileWithMode asked with 'path=/p/docker/\.env\.ext'"
        ):
            run_op(file_ops.managed_file, other, path=ENV, content="A='1'\n")
        with pytest.raises(MissingFact, match="no fixture for FileWithMode"):
            run_op(file_ops.managed_file, {}, path=ENV, content="A='1'\n")


class TestSecretFile:
    KEY = "/home/a/.config/isaac-deploy/ext/wandb_api_key"

    def test_secret_is_uploaded_never_put_in_a_command(self):
        commands, _ = run_op(
            file_ops.secret_file,
            {"FileSha256WithMode": {f"path={self.KEY}": None}},
            path=self.KEY,
            secret=HiddenValue("s3cr3t"),
        )
        assert commands[0] == "mkdir -p -m 700 /home/a/.config/isaac-deploy/ext"
        assert (
            "upload",
            "/home/a/.config/isaac-deploy/ext/.wandb_api_key.isaac-deploy.tmp",
            "s3cr3t\n",
        ) in commands
        assert not any("s3cr3t" in c for c in commands if isinstance(c, str))

    def test_same_secret_is_a_noop_compared_by_digest(self, caplog):
        digest = hashlib.sha256(b"s3cr3t\n").hexdigest()
        facts = {
            "FileSha256WithMode": {
                f"path={self.KEY}": FileDigest(mode=0o600, uid=1000, sha256=digest)
            }
        }
        commands, host = run_op(
            file_ops.secret_file, facts, path=self.KEY, secret=HiddenValue("s3cr3t")
        )
        assert commands == [] and "secret not shown" in host.noops[0]
        assert "s3cr3t" not in caplog.text

    def test_same_secret_with_loose_mode_is_tightened(self):
        digest = hashlib.sha256(b"s3cr3t\n").hexdigest()
        facts = {
            "FileSha256WithMode": {
                f"path={self.KEY}": FileDigest(mode=0o644, uid=1000, sha256=digest)
            }
        }
        commands, _ = run_op(
            file_ops.secret_file, facts, path=self.KEY, secret=HiddenValue("s3cr3t")
        )
        assert commands == [f"chmod 600 {self.KEY}"]

    def test_hidden_value_is_masked_in_output(self):
        assert str(HiddenValue("s3cr3t")) == "*MASKED*" and "s3cr3t" not in repr(
            HiddenValue("s3cr3t")
        )


BUILD = ImageBuild(
    image="isaac-lab-ext:alice",
    dockerfile="/p/docker/Dockerfile.ext",
    base_image="base:1",
    build_args={"EXTENSION_NAME": "ext", "NOTE": "a b;$(x)"},
)
BASE = LocalImage("sha256:" + "b" * 64)
DOCKERFILE_TEXT = "FROM ${ISAACLAB_BASE_IMAGE}\nCOPY source/ /ext/source/\n"


def text_digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def inputs(image: LocalImage | None = None, **kwargs) -> BuildInputs:
    images = {"base:1": BASE}
    if image:
        images["isaac-lab-ext:alice"] = image
    text = kwargs.get("dockerfile", DOCKERFILE_TEXT)
    return BuildInputs(
        kwargs.get("digest", "sha256:ctx"),
        kwargs.get("error"),
        images,
        kwargs.get("docker_error"),
        {} if text is None else {BUILD.dockerfile: text_digest(text)},
        kwargs.get("dockerfile_errors", {}),
    )


INPUTS_ARGS = (
    "context=/p, dockerfiles=['/p/docker/Dockerfile.ext'], images=['isaac-lab-ext:alice', 'base:1']"
)


def build_command(inputs: str) -> str:
    """The build of ``BUILD``: every layer labelled with the image it builds, intermediate
    containers removed also on failure, then that image's dangling layers."""
    return (
        "docker build --pull=false --force-rm -f /p/docker/Dockerfile.ext -t isaac-lab-ext:alice "
        f"--label org.isaac-deploy.inputs={inputs} --build-arg ISAAC_IMAGE=isaac-lab-ext:alice "
        "--build-arg EXTENSION_NAME=ext --build-arg 'NOTE=a b;$(x)' /p || { code=$?; "
        "docker image prune --force --filter label=org.isaac-deploy.image=isaac-lab-ext:alice "
        ">/dev/null; exit $code; }"
    )


class TestImages:
    def expected_inputs(self) -> str:
        return inputs_digest("sha256:ctx", text_digest(DOCKERFILE_TEXT), BUILD, BASE.id)

    def test_missing_image_is_built_with_quoted_args_and_an_inputs_label(self):
        commands, host = run_op(
            docker_ops.images,
            {"ImageBuildInputs": {INPUTS_ARGS: inputs()}},
            context="/p",
            builds=[BUILD],
        )
        assert commands == [build_command(self.expected_inputs())]
        assert host.fact_calls == [
            (
                "ImageBuildInputs",
                {
                    "context": "/p",
                    "dockerfiles": ["/p/docker/Dockerfile.ext"],
                    "images": ["isaac-lab-ext:alice", "base:1"],
                },
            )
        ]

    @pytest.mark.parametrize(
        ("code", "after"),
        [
            (7, ["image prune --force --filter label=org.isaac-deploy.image=isaac-lab-ext:alice"]),
            (0, []),
        ],
    )
    def test_a_failed_build_removes_its_dangling_layers_and_keeps_its_exit_code(
        self, tmp_path, code, after
    ):
        """The command as a shell runs it, with a ``docker`` whose build exits ``code``."""
        commands, _ = run_op(
            docker_ops.images,
            {"ImageBuildInputs": {INPUTS_ARGS: inputs()}},
            context="/p",
            builds=[BUILD],
        )
        log = tmp_path / "docker.log"
        docker = tmp_path / "docker"
        docker.write_text(f'#!/bin/sh\necho "$*" >> {log}\n[ "$1" != build ] || exit {code}\n')
        docker.chmod(0o755)
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
        result = subprocess.run(["sh", "-c", commands[0]], env=env, capture_output=True)
        assert result.returncode == code and result.stdout == b""
        build, *rest = log.read_text().splitlines()
        assert build.startswith("build --pull=false --force-rm ") and rest == after

    def test_unchanged_inputs_are_not_rebuilt(self):
        image = LocalImage(
            "sha256:" + "c" * 64, {"org.isaac-deploy.inputs": self.expected_inputs()}
        )
        commands, host = run_op(
            docker_ops.images,
            {"ImageBuildInputs": {INPUTS_ARGS: inputs(image)}},
            context="/p",
            builds=[BUILD],
        )
        assert commands == [] and host.noops == ["image isaac-lab-ext:alice is up to date"]

    def test_any_changed_input_rebuilds(self):
        image = LocalImage(
            "sha256:" + "c" * 64, {"org.isaac-deploy.inputs": self.expected_inputs()}
        )
        for changed in (
            inputs(image, digest="sha256:other"),
            inputs(image, dockerfile=DOCKERFILE_TEXT + "LABEL note=changed\n"),
        ):
            commands, _ = run_op(
                docker_ops.images,
                {"ImageBuildInputs": {INPUTS_ARGS: changed}},
                context="/p",
                builds=[BUILD],
            )
            assert len(commands) == 1
        other_args = ImageBuild(**{**BUILD.__dict__, "build_args": {"EXTENSION_NAME": "x"}})
        commands, _ = run_op(
            docker_ops.images,
            {"ImageBuildInputs": {INPUTS_ARGS: inputs(image)}},
            context="/p",
            builds=[other_args],
        )
        assert len(commands) == 1

    def test_changed_dockerfile_text_rebuilds_with_the_new_digest(self):
        image = LocalImage(
            "sha256:" + "c" * 64, {"org.isaac-deploy.inputs": self.expected_inputs()}
        )
        edited = DOCKERFILE_TEXT + "# a comment counts too\n"
        commands, host = run_op(
            docker_ops.images,
            {"ImageBuildInputs": {INPUTS_ARGS: inputs(image, dockerfile=edited)}},
            context="/p",
            builds=[BUILD],
        )
        new_inputs = inputs_digest("sha256:ctx", text_digest(edited), BUILD, BASE.id)
        assert new_inputs != self.expected_inputs()
        assert commands == [build_command(new_inputs)]
        assert host.noops == []

    def test_same_dockerfile_text_elsewhere_is_not_rebuilt(self):
        """The digest is of the Dockerfile's text, not of its path."""
        moved = ImageBuild(**{**BUILD.__dict__, "dockerfile": "/q/docker/Dockerfile.ext"})
        assert (
            inputs_digest("sha256:ctx", text_digest(DOCKERFILE_TEXT), moved, BASE.id)
            == self.expected_inputs()
        )
        image = LocalImage(
            "sha256:" + "c" * 64, {"org.isaac-deploy.inputs": self.expected_inputs()}
        )
        images = {"base:1": BASE, "isaac-lab-ext:alice": image}
        facts = BuildInputs(
            "sha256:ctx", None, images, None, {moved.dockerfile: text_digest(DOCKERFILE_TEXT)}
        )
        args = INPUTS_ARGS.replace("/p/docker", "/q/docker")
        commands, host = run_op(
            docker_ops.images, {"ImageBuildInputs": {args: facts}}, context="/p", builds=[moved]
        )
        assert commands == [] and host.noops == ["image isaac-lab-ext:alice is up to date"]

    def test_missing_dockerfile_is_one_line_and_that_image_is_not_built(self, caplog):
        error = "no such Dockerfile: /p/docker/Dockerfile.ext"
        facts = inputs(dockerfile=None, dockerfile_errors={BUILD.dockerfile: error})
        commands, host = run_op(
            docker_ops.images,
            {"ImageBuildInputs": {INPUTS_ARGS: facts}},
            context="/p",
            builds=[BUILD],
        )
        assert commands == [] and host.noops == []
        lines = [r.getMessage() for r in caplog.records if "Dockerfile" in r.getMessage()]
        assert lines == [f"[test] isaac-lab-ext:alice is not built: {error}"]

    def test_missing_dockerfile_does_not_stop_the_other_image(self, caplog):
        dev = ImageBuild(
            image="isaac-lab-ext-dev:alice",
            dockerfile="/p/docker/Dockerfile.ext-dev",
            base_image="base:1",
        )
        error = "no such Dockerfile: /p/docker/Dockerfile.ext-dev"
        facts = inputs(dockerfile_errors={dev.dockerfile: error})
        args = (
            "context=/p, dockerfiles=['/p/docker/Dockerfile.ext', '/p/docker/Dockerfile.ext-dev'], "
            "images=['isaac-lab-ext:alice', 'base:1', 'isaac-lab-ext-dev:alice', 'base:1']"
        )
        commands, _ = run_op(
            docker_ops.images,
            {"ImageBuildInputs": {args: facts}},
            context="/p",
            builds=[BUILD, dev],
        )
        assert len(commands) == 1 and "-t isaac-lab-ext:alice " in commands[0]
        assert f"isaac-lab-ext-dev:alice is not built: {error}" in caplog.text

    def test_missing_base_warns_with_the_hint_and_builds_nothing(self, caplog):
        no_base = BuildInputs("sha256:ctx", None, {}, None, inputs().dockerfiles)
        facts = {"ImageBuildInputs": {INPUTS_ARGS: no_base}}
        commands, _ = run_op(
            docker_ops.images, facts, context="/p", builds=[BUILD], base_hint="get it"
        )
        assert commands == []
        assert (
            "base image base:1 is missing, so isaac-lab-ext:alice is not built: get it"
            in caplog.text
        )

    def test_docker_unusable_or_context_unreadable_builds_nothing(self, caplog):
        for facts in (
            inputs(docker_error="permission denied"),
            inputs(digest=None, error="no such build context: /p"),
        ):
            commands, _ = run_op(
                docker_ops.images,
                {"ImageBuildInputs": {INPUTS_ARGS: facts}},
                context="/p",
                builds=[BUILD],
            )
            assert commands == []
        assert "Docker is not usable: permission denied" in caplog.text
        assert "no such build context" in caplog.text


class TestDaemonAndRuntime:
    def test_running_daemon_is_a_noop(self):
        commands, _ = run_op(docker_ops.daemon_running, {}, toolkit=Toolkit(docker_server="27.0.1"))
        assert commands == []

    def test_permission_denied_means_running(self):
        toolkit = Toolkit(
            docker_client="27.0.1", docker_server_error="dial unix: connect: permission denied"
        )
        assert run_op(docker_ops.daemon_running, {}, toolkit=toolkit)[0] == []

    @pytest.mark.parametrize(
        ("fixture", "named"),
        [
            ("debian12-dead-docker-host.json", "DOCKER_HOST points to"),
            ("debian12-dead-context.json", 'the Docker context "dead"'),
        ],
    )
    def test_engine_elsewhere_is_never_started_here(self, caplog, fixture, named):
        toolkit = WorkstationToolkit().process(fixture_lines(f"toolkit/{fixture}"))
        assert run_op(docker_ops.daemon_running, {}, toolkit=toolkit)[0] == []
        warnings = [
            line for line in caplog.text.splitlines() if "Docker daemon not started" in line
        ]
        assert len(warnings) == 1 and named in warnings[0]
        assert (
            f"-> {BACK[fixture]} to use this machine's engine, or start the Docker daemon at "
            in (warnings[0])
        )

    def test_systemd_and_plain_hosts(self):
        systemd, _ = run_op(docker_ops.daemon_running, {}, toolkit=Toolkit(init="systemd"))
        assert systemd[0].startswith("systemctl enable --now docker.service && ")
        plain, _ = run_op(
            docker_ops.daemon_running,
            {},
            toolkit=Toolkit(init="process_api", dockerd="/usr/bin/dockerd"),
        )
        assert plain[0].startswith(
            "start-stop-daemon --start --oknodo --background --make-pidfile --pidfile "
            "/run/isaac-deploy-dockerd.pid --output /var/log/isaac-deploy-dockerd.log --exec /usr/bin/dockerd && "
        )

    def test_nvidia_runtime_only_when_not_configured(self):
        configured = Toolkit(runtimes=("nvidia", "runc"), init="systemd")
        assert run_op(docker_ops.nvidia_runtime, {}, toolkit=configured)[0] == []
        by_daemon_json = Toolkit(daemon_json={"runtimes": {"nvidia": {}}}, init="systemd")
        assert run_op(docker_ops.nvidia_runtime, {}, toolkit=by_daemon_json)[0] == []
        commands, _ = run_op(docker_ops.nvidia_runtime, {}, toolkit=Toolkit(init="systemd"))
        assert commands == [
            "nvidia-ctk runtime configure --runtime=docker",
            "systemctl restart docker.service",
        ]
