"""pyinfra connector ``@openssh/HOST``: the system's OpenSSH client, one connection per host.

The first step opens an OpenSSH master connection (``ControlMaster``); every command, file
upload, fact and rsync of the deploy then runs through it, so a roll-out authenticates once per
login node (one handshake instead of one per step), and ``~/.ssh/config`` (``ProxyJump``,
``User``, keys) applies as in a terminal. It runs in batch mode: authentication must work
without a prompt (a key or an agent).

Host data, as pyinfra's ``ssh`` connector: ``ssh_hostname``, ``ssh_port``, ``ssh_user``,
``ssh_key``, ``ssh_known_hosts_file``, ``ssh_strict_host_key_checking`` (default ``yes``:
unknown host keys are refused), ``ssh_config_file``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from shutil import which
from typing import Any

from pyinfra import logger
from pyinfra.api.command import QuoteString, StringCommand
from pyinfra.api.exceptions import ConnectError
from pyinfra.api.output import echo
from pyinfra.api.util import get_file_io
from pyinfra.connectors import ssh
from pyinfra.connectors.base import BaseConnector
from pyinfra.connectors.util import (
    CommandOutput,
    execute_command_with_sudo_retry,
    make_unix_command_for_host,
    run_local_process,
)

from isaac_deploy.model.ssh import ssh_options


class OpenSSHConnector(BaseConnector):
    """Runs everything for a host over one OpenSSH master connection."""

    handles_execution = True
    data_cls = ssh.ConnectorData  # the same host data keys as pyinfra's ssh connector
    data_meta = ssh.connector_data_meta

    def __init__(self, state, host):
        super().__init__(state, host)
        self.control_dir: str | None = None
        self.connect_error: str | None = None  # why the last connect failed (for reports)

    @staticmethod
    def make_names_data(name=None):
        if not name:
            raise ConnectError("@openssh needs a host name: @openssh/login.cluster.org")
        yield f"@openssh/{name}", {}, []  # the name is the address unless ssh_hostname is set

    @property
    def address(self) -> str:
        return str(self.data.get("ssh_hostname") or self.host.name.split("/", 1)[-1])

    @property
    def control_path(self) -> str:
        assert self.control_dir is not None, "not connected"
        return os.path.join(self.control_dir, "master")

    def ssh_argv(self) -> list[str]:
        """``ssh`` through the master connection (for commands and rsync's ``-e``)."""
        return ["ssh", "-S", self.control_path, *ssh_options(self.data)]

    def rsh(self) -> str:
        """The ``-e`` command for rsync, as one shell word list."""
        return " ".join(shlex.quote(part) for part in self.ssh_argv())

    def connect(self) -> None:
        if not which("ssh"):
            raise ConnectError("the OpenSSH client (ssh) is not installed on this machine")
        self.control_dir = tempfile.mkdtemp(prefix="isd-ssh-")  # short: socket paths are limited
        argv = [
            "ssh",
            "-M",
            "-S",
            self.control_path,
            "-f",
            "-N",
            "-o",
            "ControlPersist=no",
            *ssh_options(self.data),
            self.address,
        ]
        with tempfile.TemporaryFile() as errors:
            # the master stays in the background: its output must not be a pipe we wait on
            code = subprocess.call(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors
            )
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
        if code != 0:
            shutil.rmtree(self.control_dir, ignore_errors=True)
            self.control_dir = None
            lines = [line for line in message.splitlines() if line.strip()]
            self.connect_error = f"SSH error: {'; '.join(lines[-3:]) or f'ssh exited with {code}'}"
            raise ConnectError(self.connect_error)

    def disconnect(self) -> None:
        if self.control_dir is None:
            return
        subprocess.call(
            [*self.ssh_argv(), "-O", "exit", self.address],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(self.control_dir, ignore_errors=True)
        self.control_dir = None

    def run_shell_command(
        self,
        command: StringCommand,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> tuple[bool, CommandOutput]:
        get_pty = arguments.pop("_get_pty", False)
        timeout = arguments.pop("_timeout", None)
        stdin = arguments.pop("_stdin", None)
        success_codes = arguments.pop("_success_exit_codes", None)

        def execute() -> tuple[int, CommandOutput]:
            unix_command = make_unix_command_for_host(self.state, self.host, command, **arguments)
            logger.debug("--> Running command on %s: %s", self.host.name, unix_command)
            if print_input:
                echo(f"{self.host.print_prefix}>>> {unix_command}", err=True)
            argv = [
                *self.ssh_argv(),
                *(["-tt"] if get_pty else []),
                self.address,
                unix_command.get_raw_value(),
            ]
            return run_local_process(
                " ".join(shlex.quote(part) for part in argv),
                stdin=stdin,
                timeout=timeout,
                print_output=print_output,
                print_prefix=self.host.print_prefix,
            )

        code, output = execute_command_with_sudo_retry(self.host, arguments, execute)
        return (code in success_codes if success_codes else code == 0), output

    def _stream(self, remote_command: str, stdin=None, stdout=None) -> None:
        """Run ``remote_command`` with a byte stream in or out; raise with its stderr."""
        argv = [*self.ssh_argv(), self.address, remote_command]
        result = subprocess.run(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        if result.returncode != 0:
            raise OSError(result.stderr.decode(errors="replace").strip())

    def put_file(
        self,
        filename_or_io,
        remote_filename,
        remote_temp_filename=None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments,
    ) -> bool:
        """Stream the file through the master connection into ``cat >`` on the host; with sudo
        or su, ``cat`` runs as the target user (``_sudo_user``, ``_su_user``; root without one),
        so the file is written as that user, never through a temporary file of the SSH user.
        An existing file keeps its mode and owner (a secret's 0600 temp file stays 0600)."""
        for execution_only in ("_get_pty", "_timeout", "_stdin", "_success_exit_codes"):
            arguments.pop(execution_only, None)
        command = StringCommand("cat >", QuoteString(str(remote_filename)))
        wrapped = make_unix_command_for_host(self.state, self.host, command, **arguments)
        if print_input:
            echo(f"{self.host.print_prefix}>>> {wrapped}", err=True)
        with get_file_io(filename_or_io) as handle, tempfile.TemporaryFile() as data:
            content = handle.read()
            data.write(content.encode() if isinstance(content, str) else content)
            data.seek(0)
            self._stream(wrapped.get_raw_value(), stdin=data)
        if print_output:
            echo(f"{self.host.print_prefix}file uploaded: {remote_filename}", err=True)
        return True

    def get_file(
        self,
        remote_filename,
        filename_or_io,
        remote_temp_filename=None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments,
    ) -> bool:
        with tempfile.TemporaryFile() as data:
            self._stream(f"cat {shlex.quote(str(remote_filename))}", stdout=data)
            data.seek(0)
            with get_file_io(filename_or_io, "wb") as handle:
                handle.write(data.read())
        if print_output:
            echo(f"{self.host.print_prefix}file downloaded: {remote_filename}", err=True)
        return True

    def check_can_rsync(self) -> None:
        if not which("rsync"):
            raise NotImplementedError("The `rsync` binary is not available on this system.")

    def rsync(
        self,
        src: str,
        dest: str,
        flags,
        print_output: bool = False,
        print_input: bool = False,
        **arguments,
    ) -> bool:
        """rsync to ``dest`` on this host through the master connection. ``src``, ``dest`` and
        ``flags`` are shell words (quoted by the caller), as with pyinfra's ``ssh`` connector."""
        if arguments.get("_sudo"):
            raise NotImplementedError("@openssh: rsync with sudo is not supported")
        command = (
            f"rsync {' '.join(flags)} -e {shlex.quote(self.rsh())} {src} "
            f"{shlex.quote(self.address)}:{dest}"
        )
        if print_input:
            echo(f"{self.host.print_prefix}>>> {command}", err=True)
        code, output = run_local_process(
            command, print_output=print_output, print_prefix=self.host.print_prefix
        )
        if code != 0:
            raise OSError(output.stderr)
        return True
