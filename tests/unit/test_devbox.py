"""The dev container a developer lives in, without Docker: the ROS 2 settings and build
arguments, the override's middleware settings and time zone, X11's cookie and compose entries,
and what the CLI hands the engine (inputs -> output)."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from isaac_deploy.cli import containers, doctor
from isaac_deploy.cli.project import load
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.images import build_args
from isaac_deploy.model.mounts import MountConfig
from isaac_deploy.model.ros2 import DDS_PROFILE_TARGET, Ros2Settings
from isaac_deploy.model.workstation import HostUser, WorkstationConfig
from isaac_deploy.model.x11 import COOKIE_DIR, cookie_file, local_socket, wildcard_cookies
from isaac_deploy.render.compose_override import override_yaml
from tests.unit.test_cli_units import make_root

USER = HostUser("alice", 1000, 1000, "/home/alice")
# `xauth nlist` of xauth 1.1.2 (Debian 12), captured from an authority file made with
# `xauth add myhost/unix:5 ...` and `xauth add localhost:10 ...` (what sshd adds for `ssh -X`,
# stored as the host's name with unix:10).
NLIST = (
    "0100 0006 6d79686f7374 0001 35 0012 4d49542d4d414749432d434f4f4b49452d31 0010 "
    "0123456789abcdef0123456789abcdef\n"
    "0100 0002 766d 0002 3130 0012 4d49542d4d414749432d434f4f4b49452d31 0010 "
    "fedcba9876543210fedcba9876543210\n"
)


def config(**data) -> WorkstationConfig:
    values = {f"isaac_{key}": value for key, value in data.items()}
    return WorkstationConfig.from_host_data(values, USER, "/p", ("ext",))


def test_ros2_defaults_add_humble_with_both_middlewares():
    ros2 = config().ros2
    assert config().x11 is True
    assert build_args(config(), "ext-dev") | ros2.build_args() == build_args(config(), "ext-dev")
    assert ros2.build_args() == {
        "ROS_DISTRO": "humble",
        "ROS_INSTALL": "1",
        "ROS_APT_PACKAGES": (
            "ros-humble-ros-base ros-humble-rmw-fastrtps-cpp ros-humble-rmw-cyclonedds-cpp"
        ),
        "ROS_APT_SOURCE": "http://packages.ros.org/ros2/ubuntu",
        "ROS_APT_KEY_URL": "https://raw.githubusercontent.com/ros/rosdistro/master/ros.key",
    }
    assert ros2.environment() == {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp", "ROS_DOMAIN_ID": "0"}
    assert "ROS_DISTRO" not in build_args(config(), "ext")  # the production image has no layer


def test_ros2_layer_off_and_middleware_from_the_inventory():
    ros2 = config(
        ros2={
            "layer": "false",
            "distro": "jazzy",
            "packages": "ros-base, rmw-cyclonedds-cpp",
            "rmw_implementation": "rmw_cyclonedds_cpp",
            "domain_id": "42",
            "dds_profile": "~/cyclonedds.xml",
        }
    ).ros2
    args = ros2.build_args()
    assert args["ROS_INSTALL"] == "" and args["ROS_DISTRO"] == "jazzy"
    assert args["ROS_APT_PACKAGES"] == "ros-jazzy-ros-base ros-jazzy-rmw-cyclonedds-cpp"
    assert ros2.environment() == {
        "RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp",
        "ROS_DOMAIN_ID": "42",
        "CYCLONEDDS_URI": f"file://{DDS_PROFILE_TARGET}",
    }


@pytest.mark.parametrize(
    ("data", "key", "message"),
    [
        ({"ros2": {"distro": "noetic"}}, "isaac_ros2[distro]", "must be one of"),
        ({"ros2": {"domain_id": 233}}, "isaac_ros2[domain_id]", "at most 232"),
        ({"ros2": {"rmw_implementation": "fastdds"}}, "isaac_ros2[rmw_implementation]", "RMW"),
        ({"ros2": {"packages": ["ros-base; rm -rf /"]}}, "isaac_ros2[packages][0]", "not a ROS"),
        ({"ros2": {"packages": []}}, "isaac_ros2[packages]", "at least one"),
        ({"ros2": {"apt_source": "ftp://x"}}, "isaac_ros2[apt_source]", "apt repository"),
        ({"ros2": {"apt_key_url": "http://x/k"}}, "isaac_ros2[apt_key_url]", "https://"),
        ({"ros2": {"dds_profile": "dds.xml"}}, "isaac_ros2[dds_profile]", "absolute path"),
        (
            {"ros2": {"rmw_implementation": "rmw_zenoh_cpp", "dds_profile": "/etc/z.xml"}},
            "isaac_ros2[dds_profile]",
            "no known profile variable for rmw_zenoh_cpp",
        ),
        ({"ros2": {"layr": False}}, "isaac_ros2[layr]", "unknown setting"),
        ({"ros2": "humble"}, "isaac_ros2", "must be a mapping"),
        ({"x11": "maybe"}, "isaac_x11", "true or false"),
    ],
)
def test_bad_devbox_settings_are_one_line_naming_the_key(data, key, message):
    with pytest.raises(ConfigError) as error:
        config(**data)
    text = str(error.value)
    assert key in text and message in text and "\n" not in text


def test_override_gives_the_dev_containers_ros2_settings_and_everyone_the_time_zone():
    ros2 = Ros2Settings.parse("isaac_ros2", {"dds_profile": "~/dds/fastdds.xml", "domain_id": 7})
    text = override_yaml(MountConfig.loads(None), "/home/a", gpu=True, ros2=ros2, localtime=True)
    services = yaml.safe_load(text)["services"]
    clock = {"type": "bind", "source": "/etc/localtime", "target": "/etc/localtime"}
    clock["read_only"] = True
    profile = {
        "type": "bind",
        "source": "/home/a/dds/fastdds.xml",
        "target": DDS_PROFILE_TARGET,
        "read_only": True,
    }
    for dev in ("ext-dev", "ext-dev-rootless"):
        assert services[dev]["environment"] == {
            "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
            "ROS_DOMAIN_ID": "7",
            "FASTRTPS_DEFAULT_PROFILES_FILE": DDS_PROFILE_TARGET,
        }
        assert services[dev]["volumes"] == [profile, clock]
    assert services["ext"] == {"volumes": [clock]}


def test_x11_off_or_no_socket_folder_mounts_no_socket():
    plain = yaml.safe_load(override_yaml(MountConfig.loads(None), "/h", gpu=True, x11=False))
    assert plain == {"services": {"ext": {}, "ext-dev": {}, "ext-dev-rootless": {}}}


def test_cookies_match_any_host_name_and_stay_the_same_bytes():
    data = wildcard_cookies(NLIST)
    first = bytes.fromhex(
        "ffff 0006 6d79686f7374 0001 35 0012 4d49542d4d414749432d434f4f4b49452d31 0010 "
        "0123456789abcdef0123456789abcdef".replace(" ", "")
    )
    assert data.startswith(first) and data.count(b"\xff\xff") == 2
    assert data.endswith(bytes.fromhex("fedcba9876543210fedcba9876543210"))
    assert wildcard_cookies("") == b""
    with pytest.raises(ValueError, match="not an xauth nlist entry"):
        wildcard_cookies("xauth: file /x does not exist")


def test_real_xauth_reads_the_cookies_as_wildcard_entries(tmp_path):
    """The bytes are an authority file: xauth itself lists them as FamilyWild (``#ffff#``)."""
    path = tmp_path / "auth"
    path.write_bytes(wildcard_cookies(NLIST))
    listed = subprocess.run(["xauth", "-f", str(path), "list"], capture_output=True, text=True)
    assert listed.stdout.splitlines() == [
        "#ffff#6d79686f7374#:5  MIT-MAGIC-COOKIE-1  0123456789abcdef0123456789abcdef",
        "#ffff#766d#:10  MIT-MAGIC-COOKIE-1  fedcba9876543210fedcba9876543210",
    ]


@pytest.mark.parametrize(
    ("display", "socket"),
    [
        (":0", "/tmp/.X11-unix/X0"),
        (":1.0", "/tmp/.X11-unix/X1"),
        ("unix:12", "/tmp/.X11-unix/X12"),
        ("localhost:10.0", None),
        ("ws7:0", None),
    ],
)
def test_local_displays_use_the_socket_folder(display, socket):
    assert local_socket(display) == socket


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "session"))
    (tmp_path / "session").mkdir(mode=0o700)
    return load(make_root(tmp_path / "p"))


def test_no_display_adds_nothing_and_writes_no_compose_file(project, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    assert containers.runtime_override(project) is None
    argv = containers.exec_argv(project, "c1", ["true"], containers.RunOptions())
    assert not [a for a in argv if a.startswith(("DISPLAY=", "XAUTHORITY="))]


def test_a_display_gives_the_dev_containers_x11(project, monkeypatch):
    monkeypatch.setenv("DISPLAY", "localhost:10.0")
    monkeypatch.setenv("TERM", "xterm-256color")
    path = containers.runtime_override(project)
    assert path is not None and oct(path.stat().st_mode & 0o777) == "0o600"
    services = json.loads(path.read_text())["services"]
    uid = project.config.uid
    tmpfs = {"type": "tmpfs", "target": COOKIE_DIR, "tmpfs": {"mode": 0o711}}
    assert services["ext-dev"] == {
        "volumes": [tmpfs],  # a TCP display: no socket folder
        "environment": {
            "DISPLAY": "localhost:10.0",
            "XAUTHORITY": cookie_file(uid),
            "QT_X11_NO_MITSHM": "1",
        },
    }
    assert services["ext-dev-rootless"]["environment"]["XAUTHORITY"] == cookie_file(0)
    assert services["ext"] == {}  # the headless service gets nothing X-related
    argv = containers.exec_argv(project, "c1", ["xlogo"], containers.RunOptions(user="2000:2000"))
    assert "DISPLAY=localhost:10.0" in argv and "TERM=xterm-256color" in argv
    assert f"XAUTHORITY={cookie_file(2000)}" in argv


def test_x11_off_empties_the_display(tmp_path, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "session"))
    (tmp_path / "session").mkdir(mode=0o700)
    monkeypatch.setenv("DISPLAY", ":0")
    project = load(make_root(tmp_path / "p", {"isaac_x11": False}))
    services = json.loads(containers.runtime_override(project).read_text())["services"]
    assert services["ext-dev"] == {"environment": {"DISPLAY": ""}}
    argv = containers.exec_argv(project, "c1", ["true"], containers.RunOptions())
    assert not [a for a in argv if a.startswith("DISPLAY=")]


def test_the_cookie_goes_in_on_stdin_owned_by_the_user(project, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":5")
    monkeypatch.setattr(containers, "nlist", lambda display: NLIST)
    calls = []

    def fake_run(argv, **kwargs):
        calls.append((argv, kwargs.get("input")))
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr(containers.subprocess, "run", fake_run)
    containers.install_cookie(project, "ext-dev", "c1", "2000:2001")
    ((argv, data),) = calls
    assert argv[:6] == ["docker", "exec", "--interactive", "--user", "0:0", "c1"]
    assert argv[-2:] == [cookie_file(2000), "2000:2001"] and "umask 077" in argv[8]
    assert data == wildcard_cookies(NLIST)
    assert not [a for a in argv if "0123456789abcdef" in a]  # never on a command line
    containers.install_cookie(project, "ext", "c1", "0:0")  # the headless service: nothing
    monkeypatch.delenv("DISPLAY")
    containers.install_cookie(project, "ext-dev", "c1", "2000:2001")  # no display: nothing
    assert len(calls) == 1


def test_without_xauth_a_display_is_one_line(project, monkeypatch, capsys):
    from isaac_deploy.probes import xauth

    monkeypatch.setenv("DISPLAY", ":5")
    monkeypatch.setattr(xauth.shutil, "which", lambda name: None)
    containers.install_cookie(project, "ext-dev", "c1", "1000:1000")
    err = capsys.readouterr().err.strip()
    assert "xauth is not installed" in err and "\n" not in err


@pytest.mark.parametrize(
    ("display", "x11", "sockets", "xauth", "status", "words"),
    [
        ("", True, True, True, "SKIPPED", "DISPLAY is not set"),
        (":0", False, True, True, "SKIPPED", "isaac_x11 is off"),
        (":0", True, False, True, "WARN", "no /tmp/.X11-unix"),
        ("localhost:10.0", True, False, True, "OK", "with its X authority cookie"),
        ("localhost:10.0", True, False, False, "WARN", "no xauth"),
    ],
)
def test_doctor_says_whether_guis_can_reach_the_display(
    monkeypatch, display, x11, sockets, xauth, status, words
):
    monkeypatch.setattr(doctor.os.path, "isdir", lambda path: sockets)
    monkeypatch.setattr(doctor.shutil, "which", lambda name: "/usr/bin/xauth" if xauth else None)
    check = doctor.display_check(display, x11)
    assert check.status == status and words in check.line(), check.line()
