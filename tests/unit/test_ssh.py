"""The one OpenSSH argv builder: host data in, ssh options out (host keys always checked)."""

from __future__ import annotations

import os

from isaac_deploy.model.ssh import ssh_options


def test_no_data_is_batch_mode_with_host_keys_checked():
    assert ssh_options({}) == [
        "-o",
        "BatchMode=yes",
        "-o",
        "ServerAliveInterval=30",
        "-o",
        "StrictHostKeyChecking=yes",
    ]


def test_every_setting_in_order():
    data = {
        "ssh_config_file": "/etc/isd/ssh_config",
        "ssh_known_hosts_file": "/k/known hosts",
        "ssh_strict_host_key_checking": "accept-new",
        "ssh_port": "2222",
        "ssh_user": "jdoe",
        "ssh_key": "/k/id_ed25519",
        "ssh_hostname": "login1.example.org",  # the address: not an option
    }
    assert ssh_options(data) == [
        "-o",
        "BatchMode=yes",
        "-o",
        "ServerAliveInterval=30",
        "-F",
        "/etc/isd/ssh_config",
        "-o",
        "UserKnownHostsFile=/k/known hosts",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-p",
        "2222",
        "-l",
        "jdoe",
        "-i",
        "/k/id_ed25519",
    ]


def test_home_expanded_in_key_and_known_hosts():
    options = ssh_options({"ssh_key": "~/.ssh/id", "ssh_known_hosts_file": "~/.ssh/kh"})
    home = os.path.expanduser("~")
    assert options[options.index("-i") + 1] == f"{home}/.ssh/id"
    assert f"UserKnownHostsFile={home}/.ssh/kh" in options


def test_empty_values_are_left_out_and_checking_stays_strict():
    data = {"ssh_port": None, "ssh_user": "", "ssh_key": None, "ssh_strict_host_key_checking": ""}
    options = ssh_options(data)
    assert "-p" not in options and "-l" not in options and "-i" not in options
    assert "StrictHostKeyChecking=yes" in options
