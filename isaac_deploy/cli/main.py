"""``isaac-deploy``: the everyday container commands for a person at a terminal.

The seed's ``container.sh -p PROFILE COMMAND`` and ``run_dev.sh [options] [command]`` interfaces,
on the workstation deploy's configuration model; ``docker/container.sh`` and
``docker/run_dev.sh`` forward to it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from isaac_deploy.cli import cluster_commands, containers, mount_commands
from isaac_deploy.cli.adopt import init
from isaac_deploy.cli.doctor import doctor
from isaac_deploy.cli.fleet_doctor import fleet_doctor
from isaac_deploy.cli.project import Layout, Project, find_layout, load
from isaac_deploy.model.errors import IsaacDeployError
from isaac_deploy.model.workstation import container_ids

FLEET_INVENTORY = "inventories/lab_pcs.py"
EXAMPLES = {
    "build": "isaac-deploy -p ext-dev build\n  isaac-deploy -p ext build --no-cache",
    "run": "isaac-deploy run\n"
    "  isaac-deploy run python scripts/rsl_rl/train.py --task Template-Reach-v0"
    "\n  isaac-deploy -p ext run python scripts/rsl_rl/train.py --task X --headless"
    "\n  isaac-deploy run --rootless --fix-perms pip install -e source/ext_template"
    "\n  isaac-deploy run --suffix exp2 python scripts/rsl_rl/train.py --task X   (a 2nd stack)",
    "run-dev": "isaac-deploy run-dev\n  isaac-deploy run-dev --rootless\n"
    "  isaac-deploy run-dev -u 2000 -g 2000 python scripts/rsl_rl/train.py --task X",
    "exec": "isaac-deploy exec nvidia-smi\n  isaac-deploy -p ext exec ls logs",
    "attach": "isaac-deploy attach        (detach: Ctrl-p Ctrl-q)",
    "logs": "isaac-deploy logs --follow\n  isaac-deploy -p ext logs --tail 100",
    "ps": "isaac-deploy ps\n  isaac-deploy ps --suffix exp2",
    "stop": "isaac-deploy stop           (named cache and log volumes stay)\n"
    "  isaac-deploy stop --suffix exp2",
    "remove-volumes": "isaac-deploy remove-volumes --yes",
    "mount-setup": "isaac-deploy mount-setup",
    "mount-show": "isaac-deploy mount-show\n  isaac-deploy mount-show --format docker",
    "mount-enable": "isaac-deploy mount-enable isaaclab",
    "mount-disable": "isaac-deploy mount-disable rsl_rl",
    "mount-set": "isaac-deploy mount-set isaaclab ~/dev/IsaacLab\n"
    "  isaac-deploy mount-set assets /data/assets --container-path /assets --read-only",
    "mount-set-cluster": "isaac-deploy mount-set-cluster isaaclab /cluster/work/me/IsaacLab",
    "mount-set-sync": "isaac-deploy mount-set-sync isaaclab on",
    "mount-validate": "isaac-deploy mount-validate",
    "doctor": "isaac-deploy doctor\n  isaac-deploy doctor --fleet    (the lab PCs: one table)",
    "init": "cd ~/my_robot_ext && isaac-deploy init --dry\n  isaac-deploy init\n"
    "  isaac-deploy init --name my_robot_ext     (source/ holds several extensions)",
    "setup": "isaac-deploy setup\n  isaac-deploy setup --dry\n"
    "  isaac-deploy setup --data isaac_provision=check",
    "cluster": "isaac-deploy cluster submit --run-key reach-1 -- --task Template-Reach-v0"
    "\n  isaac-deploy cluster jobs\n  isaac-deploy cluster jobs --cancel reach-1"
    "\n  isaac-deploy cluster sync --remove"
    "\n  isaac-deploy cluster sweep --run-key seeds --grid seed=1,2,3,4 --throttle 2 -- --task X"
    "\n  isaac-deploy cluster logs seeds.2 -f"
    "\n  isaac-deploy cluster shell --gpus 1 --time 01:00:00",
}


def add(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=f"example:\n  {EXAMPLES[name]}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rootless", action="store_true", help="run as root in the container")
    parser.add_argument(
        "--fix-perms",
        action="store_true",
        help="on exit, give files in the extension folder back to your user",
    )
    parser.add_argument("-u", "--uid", type=int, help="run as this uid (default: yours)")
    parser.add_argument("-g", "--gid", type=int, help="with -u: run as this gid (default: yours)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="command and its arguments")


STACK_COMMANDS = ("run", "run-dev", "exec", "attach", "logs", "ps", "stop", "remove-volumes")
"""The commands that reach one stack of the project (``--suffix``)."""


def suffix_option(parser: argparse.ArgumentParser, default: str | None = "") -> None:
    """``--suffix NAME``: before the command (``isaac-deploy --suffix a run``) or after it
    (``isaac-deploy run --suffix a``), as Isaac Lab's ``container.py`` takes it."""
    parser.add_argument(
        "--suffix",
        default=default,
        metavar="NAME",
        help="a stack of its own beside the default one: own containers and caches "
        "(lowercase letters, digits, - and _)",
    )


def data_item(text: str) -> str:
    """A ``--data`` item as pyinfra takes it: ``KEY=VALUE``; the value is read by pyinfra's
    rules where the inventory is loaded."""
    key, equals, _ = text.partition("=")
    if not key or not equals:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return text


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="isaac-deploy",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  isaac-deploy run python scripts/rsl_rl/train.py --task X\n"
        "  isaac-deploy -p ext build\n  isaac-deploy doctor",
    )
    top.add_argument(
        "-p",
        "--profile",
        choices=("ext", "ext-dev"),
        help="ext (production) or ext-dev (development, the default)",
    )
    suffix_option(top, argparse.SUPPRESS)
    top.add_argument(
        "--data",
        action="append",
        type=data_item,
        metavar="KEY=VALUE",
        help="override inventory data, as pyinfra's --data (repeatable; also passed to the "
        "cluster commands' pyinfra runs)",
    )
    sub = top.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    build = add(sub, "build", "build the profile's image (extra flags go to docker build)")
    build.add_argument("flags", nargs=argparse.REMAINDER, help="e.g. --no-cache")
    run_options(add(sub, "run", "run a command (default: a shell) in the profile's container"))
    run_options(add(sub, "run-dev", "run_dev.sh: like run, in the development container"))
    exec_parser = add(sub, "exec", "run a command in the running container")
    run_options(exec_parser)
    add(sub, "attach", "attach to the running container's shell")
    logs = add(sub, "logs", "show the container's output")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--tail", help="only the last N lines")
    add(sub, "ps", "list this project's containers")
    stop = add(sub, "stop", "remove the profile's container (volumes stay)")
    stop.add_argument("--rootless", action="store_true")
    remove = add(sub, "remove-volumes", "remove the profile's container and its named volumes")
    remove.add_argument("--yes", action="store_true", help="do not ask")
    for name in STACK_COMMANDS:
        suffix_option(sub.choices[name], argparse.SUPPRESS)
    add(sub, "mount-setup", "interactively configure external mounts")
    show = add(sub, "mount-show", "show the external mounts")
    show.add_argument("--format", choices=mount_commands.FORMATS, default="text")
    for name, verb in (("mount-enable", "enable"), ("mount-disable", "disable")):
        add(sub, name, f"{verb} an external mount").add_argument("name")
    mount_set = add(sub, "mount-set", "set (or add) a mount's local path")
    mount_set.add_argument("name")
    mount_set.add_argument("path")
    mount_set.add_argument("--container-path", help="required for a new mount")
    mount_set.add_argument("--type", choices=("full", "source"), dest="mount_type")
    mount_set.add_argument("--read-only", action="store_true")
    cluster = add(sub, "mount-set-cluster", "set a mount's path on the cluster")
    cluster.add_argument("name")
    cluster.add_argument("path")
    sync = add(sub, "mount-set-sync", "sync a mount to the cluster, or only mount it there")
    sync.add_argument("name")
    sync.add_argument("state", choices=("on", "off"))
    add(sub, "mount-validate", "check every enabled mount")
    doctor_parser = add(sub, "doctor", "check the toolkit and the project, with fixes")
    doctor_parser.add_argument(
        "--fleet",
        nargs="?",
        const=FLEET_INVENTORY,
        metavar="INVENTORY",
        help=f"instead: the same checks on every lab PC of INVENTORY (default {FLEET_INVENTORY}),"
        " over SSH, as one table",
    )
    init = add(sub, "init", "adopt this extension project: add .isaac-deploy/ and nothing else")
    init.add_argument("--name", help="the extension, when source/ holds several")
    init.add_argument("--dry", action="store_true", help="show what would be added, write nothing")
    setup = add(sub, "setup", "run the workstation deploy on this project (pyinfra ... dev.py)")
    setup.add_argument("pyinfra_args", nargs=argparse.REMAINDER, help="e.g. --dry")
    cluster_commands.add_parser(sub, add)
    return top


def service_of(args: argparse.Namespace, project: Project) -> str:
    profile = args.profile or ("ext-dev" if "ext-dev" in project.config.profiles else "ext")
    if getattr(args, "cmd", "") == "run-dev":
        profile = "ext-dev"
    if getattr(args, "rootless", False) or (
        profile == "ext-dev" and project.config.user_mode == "rootless"
    ):
        if profile == "ext":
            raise IsaacDeployError("--rootless applies to the ext-dev profile (ext runs as root)")
        return "ext-dev-rootless"
    return profile


def run_as(args: argparse.Namespace, project: Project) -> tuple[int, int] | None:
    """``-u/-g`` by the deploy's rule for ``isaac_uid``/``isaac_gid``: ids Docker takes, a uid
    alone with the image's gid, never a gid alone; ``None`` without either (the image's user)."""
    if args.uid is None and args.gid is None:
        return None
    image_ids = (project.config.uid, project.config.gid)
    return container_ids(args.uid, args.gid, image_ids, keys=("--uid", "--gid"))


def dispatch(args: argparse.Namespace) -> int:
    suffix = getattr(args, "suffix", "")
    if suffix and args.cmd not in STACK_COMMANDS:
        raise IsaacDeployError(f"--suffix applies to {', '.join(STACK_COMMANDS)}, not {args.cmd}")
    if args.cmd == "init":
        return init(Path.cwd(), args.name, args.dry)
    if args.cmd == "setup":
        return setup(find_layout(Path.cwd().resolve()), [*(args.pyinfra_args or ())], args.data)
    project = load(overrides=args.data or (), suffix=suffix)
    cmd = args.cmd
    if cmd == "cluster":
        return cluster_commands.cluster_command(args, project.layout)
    service = service_of(args, project)
    if cmd in ("run", "run-dev", "exec"):
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        ids = run_as(args, project)
        if ids is not None:
            project.config = replace(project.config, uid=ids[0], gid=ids[1])
        user = None if ids is None else f"{ids[0]}:{ids[1]}"
        options = containers.RunOptions(user=user, fix_perms=args.fix_perms)
        runner = containers.exec_in if cmd == "exec" else containers.run
        return runner(project, service, command, options)
    if cmd == "build":
        return containers.build(project, service, args.flags)
    if cmd == "attach":
        return containers.attach(project, service)
    if cmd == "logs":
        return containers.logs(project, service, args.follow, args.tail)
    if cmd == "ps":
        return containers.ps(project)
    if cmd == "stop":
        return containers.stop(project, service)
    if cmd == "remove-volumes":
        if not args.yes and (
            not sys.stdin.isatty()
            or input(
                f"remove the named volumes (caches, logs) of {service} "
                f"({project.compose_project})? [y/N] "
            )
            .strip()
            .lower()
            not in ("y", "yes")
        ):
            containers.say("nothing removed (pass --yes to skip this question)")
            return 1
        return containers.remove_volumes(project, service)
    if cmd == "doctor" and args.fleet:
        lines, failed = fleet_doctor(project.root / args.fleet, project.root, project.data)
        print("\n".join(lines))
        return 1 if failed else 0
    if cmd == "doctor":
        checks = doctor(project)
        for check in checks:
            print(check.line())
        failed = [c for c in checks if c.status == "FAIL"]
        print(f"{len(checks) - len(failed)} checks without failure, {len(failed)} failed")
        return 1 if failed else 0
    return mounts(args, project)


def setup(layout: Layout, pyinfra_args: list[str], data: list[str] | None) -> int:
    """``pyinfra -y <local inventory> <dev deploy>`` of the project (``--dry``: the plan)."""
    argv = [sys.executable, "-m", "pyinfra"]
    if "--dry" not in pyinfra_args:
        argv.append("-y")
    for item in data or ():
        argv += ["--data", item]
    deploy = [str(layout.inventory("local")), str(layout.deploy("dev"))]
    return subprocess.run([*argv, *pyinfra_args, *deploy], cwd=layout.root).returncode


def mounts(args: argparse.Namespace, project: Project) -> int:
    from isaac_deploy.model.mounts import Mount

    cmd = args.cmd
    if cmd == "mount-show":
        print(mount_commands.show(project, args.format))
    elif cmd == "mount-validate":
        from isaac_deploy.model.mounts import validate
        from isaac_deploy.probes.local import path_kind

        validate(mount_commands.load(project), path_kind, project.config.user.home)
        print("every enabled mount is valid")
    elif cmd == "mount-setup":
        from isaac_deploy.cli.wizard import wizard

        return wizard(project)
    elif cmd in ("mount-enable", "mount-disable"):
        mount_commands.change(
            project, args.name, lambda m: replace(m, enabled=cmd == "mount-enable")
        )
    elif cmd == "mount-set":
        path = mount_commands.expand(args.path)
        current = mount_commands.load(project).mounts.get(args.name)
        if current is None:
            if not args.container_path:
                raise IsaacDeployError(f"{args.name} is a new mount: give --container-path")
            new = Mount(
                container_path=args.container_path,
                enabled=True,
                local_path=path,
                mount_type=args.mount_type or "full",
                read_only=args.read_only,
            )
            mount_commands.add(project, args.name, new)
        else:
            mount_commands.change(
                project,
                args.name,
                lambda m: replace(
                    m,
                    local_path=path,
                    enabled=True,
                    container_path=args.container_path or m.container_path,
                    mount_type=args.mount_type or m.mount_type,
                    read_only=args.read_only or m.read_only,
                ),
            )
    elif cmd == "mount-set-cluster":
        mount_commands.change(project, args.name, lambda m: replace(m, cluster_path=args.path))
    elif cmd == "mount-set-sync":
        mount_commands.change(
            project, args.name, lambda m: replace(m, sync_to_cluster=args.state == "on")
        )
    if cmd not in ("mount-show", "mount-validate"):
        print(mount_commands.show(project, "text"))
    return 0


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args, unknown = top.parse_known_args(argv)
    if args.cmd == "build":  # everything else goes to docker build, e.g. --no-cache
        args.flags = [*unknown, *args.flags]
    elif args.cmd == "setup":  # and to pyinfra, e.g. --dry
        args.pyinfra_args = [*unknown, *args.pyinfra_args]
    elif unknown:
        top.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return dispatch(args)
    except IsaacDeployError as exc:
        print(f"isaac-deploy: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
