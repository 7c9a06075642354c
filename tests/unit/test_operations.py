"""Operations -> commands, for given facts (the way pyinfra tests its own operations)."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import tarfile
from dataclasses import replace

import pytest
from pyinfra.api.hiddenvalue import HiddenValue

from isaac_deploy.facts.files import FileDigest, FileSnapshot
from isaac_deploy.facts.images import BuildInputs, LocalImage
from isaac_deploy.facts.toolkit import Toolkit, WorkstationToolkit
from isaac_deploy.model.images import (
    INPUTS_LABEL,
    ContextFile,
    ImageBuild,
    build_argv,
    context_spec,
    inputs_digest,
)
from isaac_deploy.operations import docker as docker_ops
from isaac_deploy.operations import files as file_ops
from isaac_deploy.probes import PYTHON, program
from isaac_deploy.probes.context_digest import context_digest
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
    base_image="base:1",
    files=(
        ContextFile(
            ".isaac-deploy/Dockerfile", "FROM ${ISAACLAB_BASE_IMAGE}\nCOPY extension/ /x/\n"
        ),
        ContextFile(".isaac-deploy/entrypoint.sh", 'exec "$@"\n', executable=True),
    ),
    build_args={"EXTENSION_NAME": "ext", "NOTE": "a b;$(x)"},
)
BASE = LocalImage("sha256:" + "b" * 64)
INPUTS_ARGS = "context=/p, images=['isaac-lab-ext:alice', 'base:1'], include=[]"
PRUNE = "docker image prune --force --filter label=org.isaac-deploy.image=isaac-lab-ext:alice"


def inputs(image: LocalImage | None = None, **kwargs) -> BuildInputs:
    images = {"base:1": BASE}
    if image:
        images["isaac-lab-ext:alice"] = image
    return BuildInputs(
        kwargs.get("digest", "sha256:ctx"),
        kwargs.get("error"),
        images,
        kwargs.get("docker_error"),
        missing=kwargs.get("missing", ()),
    )


def build_parts(command: str) -> tuple[str, dict, list[str], list[str]]:
    """The images operation's command as its words: the program ``python3 -c`` runs, its spec,
    the ``docker build`` argv it runs, and what follows (the prune after a failure)."""
    prefix = f"{PYTHON} $py -c "
    assert command.startswith(prefix), command
    words = shlex.split(command[len(prefix) :])
    end = words.index("||")
    return words[0], json.loads(words[1]), words[2:end], words[end:]


class TestImages:
    def expected_inputs(self, build: ImageBuild = BUILD) -> str:
        return inputs_digest("sha256:ctx", build, BASE.id)

    def test_missing_image_is_built_from_a_streamed_context_with_an_inputs_label(self):
        commands, host = run_op(
            docker_ops.images,
            {"ImageBuildInputs": {INPUTS_ARGS: inputs()}},
            context="/p",
            builds=[BUILD],
        )
        [command] = commands
        source, spec, argv, after = build_parts(command)
        assert source == program("context_digest", "build_context")
        assert spec == context_spec("/p", (), "sha256:ctx", BUILD)
        labels = {INPUTS_LABEL: self.expected_inputs()}
        assert argv == build_argv(BUILD, labels) and argv[-1] == "-"
        assert "--build-arg" in argv and "NOTE=a b;$(x)" in argv  # one word, never run
        assert after == [
            "||",
            "{",
            "code=$?;",
            *PRUNE.split(),
            ">/dev/null;",
            "exit",
            "$code;",
            "}",
        ]
        assert host.fact_calls == [
            (
                "ImageBuildInputs",
                {"context": "/p", "include": [], "images": ["isaac-lab-ext:alice", "base:1"]},
            )
        ]

    def test_include_paths_reach_the_fact_and_the_stream_and_a_missing_one_warns_once(self, caplog):
        args = INPUTS_ARGS.replace("include=[]", "include=['config', 'assets/robot.usd']")
        facts = {"ImageBuildInputs": {args: inputs(missing=("assets/robot.usd",))}}
        include = ("config", "assets/robot.usd")
        for executing in (False, True):  # planned, then executed: said once
            commands, _ = run_op(
                docker_ops.images,
                facts,
                executing=executing,
                context="/p",
                builds=[BUILD],
                include=include,
            )
            assert build_parts(commands[0])[1]["include"] == list(include)
        warnings = [r.getMessage() for r in caplog.records if "isaac_image_paths" in r.getMessage()]
        assert warnings == [
            "[test] isaac_image_paths: assets/robot.usd is not in /p: nothing of it enters the images"
        ]

    @pytest.mark.parametrize(("code", "after"), [(7, [PRUNE.removeprefix("docker ")]), (0, [])])
    def test_the_command_streams_the_context_into_docker_build_and_prunes_after_a_failure(
        self, tmp_path, code, after
    ):
        """The command as a shell runs it, on a real project, with a ``docker`` whose build
        reads the context from its standard input, then exits ``code``."""
        project = tmp_path / "p"
        (project / "source" / "ext").mkdir(parents=True)
        (project / "source" / "ext" / "setup.py").write_text("setup()\n")
        (project / "README.md").write_text("# not sent\n")
        digest = context_digest(str(project))["digest"]
        facts = {
            "ImageBuildInputs": {INPUTS_ARGS.replace("/p", str(project)): inputs(digest=digest)}
        }
        commands, _ = run_op(docker_ops.images, facts, context=str(project), builds=[BUILD])
        log, received = tmp_path / "docker.log", tmp_path / "context.tar"
        fake_docker(tmp_path / "bin", log, received, code)
        env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}
        result = subprocess.run(["sh", "-c", commands[0]], env=env, capture_output=True)
        assert result.returncode == code and result.stdout == b""
        build, *rest = log.read_text().splitlines()
        assert build.startswith("build --pull=false --force-rm -f .isaac-deploy/Dockerfile ")
        assert rest == after
        with tarfile.open(received) as tar:
            assert tar.getnames() == [
                ".isaac-deploy",
                ".isaac-deploy/Dockerfile",
                ".isaac-deploy/entrypoint.sh",
                "extension",
                "extension/source",
                "extension/source/ext",
                "extension/source/ext/setup.py",
            ]

    def test_unchanged_inputs_are_not_rebuilt(self):
        image = LocalImage("sha256:" + "c" * 64, {INPUTS_LABEL: self.expected_inputs()})
        commands, host = run_op(
            docker_ops.images,
            {"ImageBuildInputs": {INPUTS_ARGS: inputs(image)}},
            context="/p",
            builds=[BUILD],
        )
        assert commands == [] and host.noops == ["image isaac-lab-ext:alice is up to date"]

    def test_any_changed_input_rebuilds_with_the_new_digest(self):
        """The project's files, isaac-deploy's Dockerfile and helpers (text and mode: an
        upgrade of isaac-deploy that changes them), the build arguments."""
        image = LocalImage("sha256:" + "c" * 64, {INPUTS_LABEL: self.expected_inputs()})
        dockerfile, entrypoint = BUILD.files
        changed_builds = [
            replace(BUILD, files=(replace(dockerfile, text=dockerfile.text + "# x\n"), entrypoint)),
            replace(BUILD, files=(dockerfile, replace(entrypoint, text=entrypoint.text + "# x\n"))),
            replace(BUILD, files=(dockerfile, replace(entrypoint, executable=False))),
            replace(BUILD, build_args={"EXTENSION_NAME": "x"}),
        ]
        digests = {self.expected_inputs()}
        for build in changed_builds:
            commands, _ = run_op(
                docker_ops.images,
                {"ImageBuildInputs": {INPUTS_ARGS: inputs(image)}},
                context="/p",
                builds=[build],
            )
            [command] = commands
            label = {INPUTS_LABEL: self.expected_inputs(build)}
            assert build_parts(command)[2] == build_argv(build, label)
            digests.add(self.expected_inputs(build))
        commands, _ = run_op(
            docker_ops.images,
            {"ImageBuildInputs": {INPUTS_ARGS: inputs(image, digest="sha256:other")}},
            context="/p",
            builds=[BUILD],
        )
        assert len(commands) == 1
        digests.add(inputs_digest("sha256:other", BUILD, BASE.id))
        assert len(digests) == len(changed_builds) + 2

    def test_missing_base_warns_with_the_hint_and_builds_nothing(self, caplog):
        no_base = BuildInputs("sha256:ctx", None, {})
        facts = {"ImageBuildInputs": {INPUTS_ARGS: no_base}}
        commands, _ = run_op(
            docker_ops.images, facts, context="/p", builds=[BUILD], base_hints={"base:1": "get it"}
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


def fake_docker(folder, log, received, code: int) -> None:
    """A ``docker`` that logs its arguments; ``build`` saves the context it reads from its
    standard input, then exits ``code``."""
    folder.mkdir()
    docker = folder / "docker"
    docker.write_text(
        "#!/usr/bin/python3\n"
        "import shutil, sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "if sys.argv[1] == 'build':\n"
        f"    with open({str(received)!r}, 'wb') as out:\n"
        "        shutil.copyfileobj(sys.stdin.buffer, out)\n"
        f"    sys.exit({code})\n"
    )
    docker.chmod(0o755)


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
